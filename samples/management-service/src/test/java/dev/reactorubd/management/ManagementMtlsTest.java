package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.MediaType;
import org.springframework.http.client.reactive.ReactorClientHttpConnector;
import org.springframework.test.web.reactive.server.WebTestClient;
import reactor.netty.http.client.HttpClient;

/**
 * Client certificates (mTLS) as the service's credentials: {@code server.ssl.client-auth=need} with a CA the test
 * makes with openssl; the certificate's CN mapped to a role by {@code ubd.security.mtls.*}. An operator's certificate
 * reaches the controller on POST and DELETE (no CSRF token: the certificate is the credential), a reader's may only
 * read, a certificate of the CA with an unmapped CN gets 401, and no certificate or one from another CA does not get
 * through the TLS handshake.
 */
class ManagementMtlsTest {
    private static final String INVALID_CREATE = "{\"target\":\"memory:64M\",\"queues\":0}";
    private static Path dir;
    private static ConfigurableApplicationContext context;
    private static String base;

    private static void openssl(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd)
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "openssl timed out: " + cmd);
        assertEquals(0, p.exitValue(), cmd + ": " + out);
    }

    /** A CA: NAME.pem and NAME.key. */
    private static void ca(String name) throws Exception {
        openssl(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                name + ".key",
                "-out",
                name + ".pem",
                "-days",
                "2",
                "-subj",
                "/CN=" + name);
    }

    /** A certificate NAME.pem (key NAME.key) with this CN, signed by the CA, for a server or a client. */
    private static void cert(String name, String cn, String ca, boolean server) throws Exception {
        openssl(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                name + ".key",
                "-out",
                name + ".csr",
                "-subj",
                "/CN=" + cn);
        Files.writeString(
                dir.resolve(name + ".ext"),
                server
                        ? "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                        : "extendedKeyUsage=clientAuth\n");
        openssl(
                "x509",
                "-req",
                "-in",
                name + ".csr",
                "-CA",
                ca + ".pem",
                "-CAkey",
                ca + ".key",
                "-CAcreateserial",
                "-out",
                name + ".pem",
                "-days",
                "2",
                "-extfile",
                name + ".ext");
    }

    @BeforeAll
    static void start() throws Exception {
        System.setProperty("org.springframework.boot.logging.LoggingSystem", "none");
        dir = Files.createTempDirectory("ubd-mtls-test");
        ca("ca");
        ca("other-ca");
        cert("server", "localhost", "ca", true);
        cert("operator", "ops-robot", "ca", false);
        cert("reader", "grafana", "ca", false);
        cert("stranger", "stranger", "ca", false);
        cert("forged", "ops-robot", "other-ca", false);
        context = new SpringApplicationBuilder(ManagementApplication.class)
                .run(
                        "--server.port=0",
                        "--server.ssl.enabled=true",
                        "--server.ssl.certificate=" + dir.resolve("server.pem"),
                        "--server.ssl.certificate-private-key=" + dir.resolve("server.key"),
                        "--server.ssl.trust-certificate=" + dir.resolve("ca.pem"),
                        "--server.ssl.client-auth=need",
                        "--ubd.security.mtls.operators=ops-robot",
                        "--ubd.security.mtls.readers=grafana");
        base = "https://localhost:" + context.getEnvironment().getProperty("local.server.port");
    }

    @AfterAll
    static void stop() throws IOException {
        if (context != null) {
            context.close();
        }
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    /** A client presenting the certificate NAME (null: none), trusting the test's CA for the server. */
    private static WebTestClient client(String name) throws IOException {
        SslContextBuilder ssl =
                SslContextBuilder.forClient().trustManager(dir.resolve("ca.pem").toFile());
        if (name != null) {
            ssl.keyManager(
                    dir.resolve(name + ".pem").toFile(),
                    dir.resolve(name + ".key").toFile());
        }
        SslContext context = ssl.build();
        HttpClient http = HttpClient.create().secure(s -> s.sslContext(context));
        return WebTestClient.bindToServer(new ReactorClientHttpConnector(http))
                .baseUrl(base)
                // Every body read whole: a test that looks only at the status leaks no Netty buffer.
                .filter((request, next) -> next.exchange(request)
                        .flatMap(r -> r.bodyToMono(String.class)
                                .defaultIfEmpty("")
                                .map(body -> r.mutate().body(body).build())))
                .build();
    }

    @Test
    void theOperatorsCertificateChangesThings() throws Exception {
        WebTestClient web = client("operator");
        web.get()
                .uri("/api/devices")
                .exchange()
                .expectStatus()
                .isOk()
                .expectBody(String.class)
                .isEqualTo("[]");
        web.post()
                .uri("/api/devices")
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isBadRequest();
        web.delete().uri("/api/devices/7").exchange().expectStatus().isNotFound();
        web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk();
    }

    @Test
    void theReadersCertificateOnlyReads() throws Exception {
        WebTestClient web = client("reader");
        web.get().uri("/api/devices").exchange().expectStatus().isOk();
        web.post()
                .uri("/api/devices")
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isForbidden();
        web.delete().uri("/api/devices/7").exchange().expectStatus().isForbidden();
    }

    @Test
    void aCertificateWithoutARoleIsUnauthorized() throws Exception {
        client("stranger").get().uri("/api/devices").exchange().expectStatus().isUnauthorized();
    }

    @Test
    void noCertificateOrOneFromAnotherCaIsRefusedByTls() throws Exception {
        for (String name : new String[] {null, "forged"}) {
            WebTestClient web = client(name);
            Throwable e = assertThrows(
                    Throwable.class, () -> web.get().uri("/api/devices").exchange());
            String chain = causes(e);
            assertTrue(
                    chain.contains("SSL") || chain.contains("certificate") || chain.contains("closed"),
                    name + ": " + chain);
        }
    }

    private static String causes(Throwable e) {
        StringBuilder b = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            b.append(t.getClass().getName()).append(": ").append(t.getMessage()).append(" <- ");
        }
        return b.toString();
    }
}

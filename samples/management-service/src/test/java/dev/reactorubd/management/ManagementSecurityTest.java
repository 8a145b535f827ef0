package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseCookie;
import org.springframework.test.web.reactive.server.EntityExchangeResult;
import org.springframework.test.web.reactive.server.WebTestClient;
import org.springframework.web.reactive.function.BodyInserters;

/**
 * The service's security on the host (no ublk driver needed: an allowed request is shown to reach the controller by
 * the controller's own answer, a validation error or a 404): credentials for /api and /actuator, the two roles, the
 * login page with its session and CSRF token, the Host and Origin checks, the page's headers, and a credentials file
 * others can read stopping the start.
 */
class ManagementSecurityTest {

    private static final String PASSWORD = "a long enough password";
    /** A body that passes security and that the controller refuses: proof that the request reached it. */
    private static final String INVALID_CREATE = "{\"target\":\"memory:64M\",\"queues\":0}";

    private static Path dir;
    private static String operator;
    private static String reader;

    private static ConfigurableApplicationContext context;
    private static WebTestClient web;

    /** Starts the service with a fresh credentials file: two tokens and two page users. */
    @BeforeAll
    static void start() throws IOException {
        // The test class path also has slf4j-simple (the library's tests): Spring Boot leaves logging to SLF4J.
        System.setProperty("org.springframework.boot.logging.LoggingSystem", "none");
        dir = Files.createTempDirectory("ubd-security-test");
        Path file = dir.resolve("credentials");
        operator = Credentials.addToken(file, "ops", Role.OPERATOR);
        reader = Credentials.addToken(file, "dashboard", Role.READER);
        Credentials.addUser(file, "alice", Role.OPERATOR, PASSWORD);
        Credentials.addUser(file, "bob", Role.READER, PASSWORD);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        assertFalse(Files.readString(file).contains(operator), "only the token's hash is kept");
        context = new SpringApplicationBuilder(ManagementApplication.class)
                .run(
                        "--server.port=0",
                        "--ubd.security.credentials-file=" + file,
                        "--ubd.security.allowed-hosts=ubd.example.test");
        web = WebTestClient.bindToServer()
                .baseUrl("http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port"))
                // Every body read whole (as a String): a test that looks only at the status leaks no Netty buffer.
                .filter((request, next) -> next.exchange(request)
                        .flatMap(r -> r.bodyToMono(String.class)
                                .defaultIfEmpty("")
                                .map(body -> r.mutate().body(body).build())))
                .build();
    }

    @AfterAll
    static void stop() throws IOException {
        if (context != null) {
            context.close();
        }
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    private static String bearer(String token) {
        return "Bearer " + token;
    }

    @Test
    void withoutCredentialsApiAndActuatorAre401AndLivenessIsOpen() {
        for (String path : List.of(
                "/api/devices",
                "/api/server",
                "/api/stats",
                "/api/devices/0",
                "/actuator/health",
                "/actuator/health/readiness",
                "/actuator/prometheus",
                "/actuator/metrics",
                "/actuator/info")) {
            web.get()
                    .uri(path)
                    .exchange()
                    .expectStatus()
                    .isUnauthorized()
                    .expectHeader()
                    .valueEquals(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"reactor-ubd\"");
        }
        web.post()
                .uri("/api/devices")
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"target\":\"null:1G\"}")
                .exchange()
                .expectStatus()
                .isUnauthorized();
        web.delete().uri("/api/devices/0").exchange().expectStatus().isUnauthorized();
        web.get()
                .uri("/api/devices")
                .header(HttpHeaders.AUTHORIZATION, bearer("ubd_not-a-token"))
                .exchange()
                .expectStatus()
                .isUnauthorized();
        assertEquals(
                "UP",
                ServiceClient.field(
                        web.get()
                                .uri("/actuator/health/liveness")
                                .exchange()
                                .expectStatus()
                                .isOk()
                                .expectBody(String.class)
                                .returnResult()
                                .getResponseBody(),
                        "status"));
        // The page sends a browser to the login page instead.
        web.get().uri("/").exchange().expectStatus().isFound().expectHeader().location("/login");
    }

    @Test
    void aReaderReadsButChangesNothing() {
        web.get()
                .uri("/api/devices")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .exchange()
                .expectStatus()
                .isOk()
                .expectBody(String.class)
                .isEqualTo("[]");
        web.get()
                .uri("/actuator/prometheus")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .exchange()
                .expectStatus()
                .isOk();
        web.get()
                .uri("/actuator/health")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .exchange()
                .expectStatus()
                .isOk();
        web.post()
                .uri("/api/devices")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"target\":\"null:1G\"}")
                .exchange()
                .expectStatus()
                .isForbidden();
        web.delete()
                .uri("/api/devices/7")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .exchange()
                .expectStatus()
                .isForbidden();
        web.post()
                .uri("/api/devices/7/mirror/replicas/0/reinstate")
                .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                .exchange()
                .expectStatus()
                .isForbidden();
    }

    @Test
    void anOperatorReachesTheController() {
        String detail = ServiceClient.field(
                web.post()
                        .uri("/api/devices")
                        .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                        .contentType(MediaType.APPLICATION_JSON)
                        .bodyValue(INVALID_CREATE)
                        .exchange()
                        .expectStatus()
                        .isBadRequest()
                        .expectBody(String.class)
                        .returnResult()
                        .getResponseBody(),
                "detail");
        assertTrue(detail.contains("queues must be from 1 to 64"), detail);
        web.delete()
                .uri("/api/devices/7")
                .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                .exchange()
                .expectStatus()
                .isNotFound();
        web.post()
                .uri("/api/devices/7/mirror/replicas/0/reinstate")
                .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                .exchange()
                .expectStatus()
                .isNotFound();
    }

    @Test
    void theClosedTargetPolicyRefusesFilesNbdAndLargeMemoryNamingTheRule() {
        String[][] cases = {
            {"file:/etc/shadow", "FILE_DIRECTORY"},
            {"file:/dev/sda", "FILE_DIRECTORY"},
            {"file:/nonexistent/x.img", "FILE_DIRECTORY"},
            {"file:/tmp/../etc/passwd", "FILE_DIRECTORY"},
            {"nbd://internal-host:22/x", "NBD_HOST"},
            {"nbd+unix:///x?socket=/run/docker.sock", "NBD_SOCKET"},
            {"memory:8T", "MEMORY"},
            {"concat(" + "null:1M,".repeat(20) + "null:1M)", "PARTS"},
            {"concat(".repeat(10) + "null:1M,null:1M" + ")".repeat(10), "NESTING_DEPTH"},
            {"null:" + "1".repeat(5000), "SPEC_LENGTH"}
        };
        for (String[] c : cases) {
            String body = web.post()
                    .uri("/api/devices")
                    .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                    .contentType(MediaType.APPLICATION_JSON)
                    .bodyValue("{\"target\":\"" + c[0] + "\"}")
                    .exchange()
                    .expectStatus()
                    .isForbidden()
                    .expectHeader()
                    .contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                    .expectBody(String.class)
                    .returnResult()
                    .getResponseBody();
            assertEquals(c[1], ServiceClient.field(body, "rule"), c[0] + ": " + body);
            String d = ServiceClient.field(body, "detail");
            // Nothing about the file itself: the same refusal whether it exists or not.
            assertTrue(
                    !c[0].startsWith("file:")
                            || !(d.contains("does not exist") || d.contains(" bytes") || d.contains("regular file")),
                    c[0] + ": " + d);
        }
    }

    @Test
    void foreignHostsAreRefusedAndConfiguredOnesAccepted() {
        for (String host : List.of("evil.example", "attacker.test:8080", "10.0.0.1", "[fe80::1]")) {
            web.get()
                    .uri("/api/devices")
                    .header(HttpHeaders.HOST, host)
                    .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                    .exchange()
                    .expectStatus()
                    .isEqualTo(421);
        }
        web.get()
                .uri("/actuator/health/liveness")
                .header(HttpHeaders.HOST, "rebound.example")
                .exchange()
                .expectStatus()
                .isEqualTo(421);
        for (String host : List.of("localhost:1234", "127.0.0.1", "[::1]:80", "UBD.example.test")) {
            web.get()
                    .uri("/api/devices")
                    .header(HttpHeaders.HOST, host)
                    .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                    .exchange()
                    .expectStatus()
                    .isOk();
        }
    }

    @Test
    void crossOriginChangesAreRefused() {
        for (String origin : List.of("http://evil.example", "null", "https://localhost", "http://localhost:1")) {
            web.post()
                    .uri("/api/devices")
                    .header(HttpHeaders.ORIGIN, origin)
                    .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                    .contentType(MediaType.APPLICATION_JSON)
                    .bodyValue(INVALID_CREATE)
                    .exchange()
                    .expectStatus()
                    .isForbidden()
                    .expectBody(String.class)
                    .consumeWith(r -> assertEquals(
                            "Cross-origin request",
                            ServiceClient.field(r.getResponseBody(), "title"),
                            r.getResponseBody()));
            web.delete()
                    .uri("/api/devices/7")
                    .header(HttpHeaders.ORIGIN, origin)
                    .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                    .exchange()
                    .expectStatus()
                    .isForbidden();
        }
        // The service's own origin passes (to the controller's validation error).
        web.post()
                .uri("/api/devices")
                .header(HttpHeaders.HOST, "localhost:8123")
                .header(HttpHeaders.ORIGIN, "http://localhost:8123")
                .header(HttpHeaders.AUTHORIZATION, bearer(operator))
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isBadRequest();
    }

    /** The value of a cookie a response set, or null. */
    private static String cookie(EntityExchangeResult<?> r, String name) {
        ResponseCookie c = r.getResponseCookies().getFirst(name);
        return c == null || c.getValue().isEmpty() ? null : c.getValue();
    }

    @Test
    void theLoginPageMakesASessionWhoseChangesNeedTheCsrfToken() {
        EntityExchangeResult<String> page = web.get()
                .uri("/login")
                .exchange()
                .expectStatus()
                .isOk()
                .expectBody(String.class)
                .returnResult();
        String csrf = cookie(page, "XSRF-TOKEN");
        assertNotNull(csrf, "the login page sets the CSRF cookie");
        assertTrue(page.getResponseBody().contains("name=\"_csrf\" value=\"" + csrf + "\""), page.getResponseBody());

        // Without the token, or with a wrong password: no session.
        web.post()
                .uri("/login")
                .cookie("XSRF-TOKEN", csrf)
                .body(BodyInserters.fromFormData("username", "alice").with("password", PASSWORD))
                .exchange()
                .expectStatus()
                .isForbidden();
        web.post()
                .uri("/login")
                .cookie("XSRF-TOKEN", csrf)
                .body(BodyInserters.fromFormData("username", "alice")
                        .with("password", "wrong password")
                        .with("_csrf", csrf))
                .exchange()
                .expectStatus()
                .isFound()
                .expectHeader()
                .location("/login?error");

        EntityExchangeResult<byte[]> login = web.post()
                .uri("/login")
                .cookie("XSRF-TOKEN", csrf)
                .body(BodyInserters.fromFormData("username", "alice")
                        .with("password", PASSWORD)
                        .with("_csrf", csrf))
                .exchange()
                .expectStatus()
                .isFound()
                .expectHeader()
                .location("/")
                .expectBody()
                .returnResult();
        String session = cookie(login, "SESSION");
        assertNotNull(session, "a session cookie: " + login.getResponseCookies());
        String token = cookie(login, "XSRF-TOKEN") != null ? cookie(login, "XSRF-TOKEN") : csrf;

        // The page, with the session: its token cookie (made again if the login replaced it) for its scripts.
        EntityExchangeResult<String> index = web.get()
                .uri("/")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .exchange()
                .expectStatus()
                .isOk()
                .expectBody(String.class)
                .returnResult();
        if (cookie(index, "XSRF-TOKEN") != null) {
            token = cookie(index, "XSRF-TOKEN");
        }
        web.get()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .exchange()
                .expectStatus()
                .isOk();

        // A POST riding the session without the token (what a cross-site form would send) is refused ...
        web.post()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isForbidden();
        web.post()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .header("X-XSRF-TOKEN", "forged")
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isForbidden();
        // ... and with it, it passes security and reaches the controller.
        web.post()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .header("X-XSRF-TOKEN", token)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isBadRequest();
        web.delete()
                .uri("/api/devices/7")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .header("X-XSRF-TOKEN", token)
                .exchange()
                .expectStatus()
                .isNotFound();

        // Signing out (the page's button) ends the session: the cookie is worth nothing after it.
        web.post()
                .uri("/logout")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .exchange()
                .expectStatus()
                .isForbidden();
        web.post()
                .uri("/logout")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .header("X-XSRF-TOKEN", token)
                .exchange()
                .expectStatus()
                .isFound()
                .expectHeader()
                .location("/login?logout");
        web.get()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .exchange()
                .expectStatus()
                .isUnauthorized();
    }

    @Test
    void aReaderSignedInOnThePageCannotChangeAnything() {
        EntityExchangeResult<String> page =
                web.get().uri("/login").exchange().expectBody(String.class).returnResult();
        String csrf = cookie(page, "XSRF-TOKEN");
        EntityExchangeResult<byte[]> login = web.post()
                .uri("/login")
                .cookie("XSRF-TOKEN", csrf)
                .body(BodyInserters.fromFormData("username", "bob")
                        .with("password", PASSWORD)
                        .with("_csrf", csrf))
                .exchange()
                .expectStatus()
                .isFound()
                .expectBody()
                .returnResult();
        String session = cookie(login, "SESSION");
        String token = cookie(login, "XSRF-TOKEN") != null ? cookie(login, "XSRF-TOKEN") : csrf;
        web.get()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .exchange()
                .expectStatus()
                .isOk();
        web.post()
                .uri("/api/devices")
                .cookie("SESSION", session)
                .cookie("XSRF-TOKEN", token)
                .header("X-XSRF-TOKEN", token)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(INVALID_CREATE)
                .exchange()
                .expectStatus()
                .isForbidden();
    }

    @Test
    void thePageHasItsSecurityHeadersAndNoInlineScript() {
        for (String path : List.of("/login", "/app.css")) {
            checkHeaders(web.get()
                    .uri(path)
                    .exchange()
                    .expectStatus()
                    .isOk()
                    .expectBody(String.class)
                    .returnResult());
        }
        for (String path : List.of("/", "/index.html", "/app.js")) {
            EntityExchangeResult<String> r = web.get()
                    .uri(path)
                    .header(HttpHeaders.AUTHORIZATION, bearer(reader))
                    .exchange()
                    .expectStatus()
                    .isOk()
                    .expectBody(String.class)
                    .returnResult();
            checkHeaders(r);
            String body = r.getResponseBody();
            if (path.endsWith("html") || path.equals("/")) {
                assertTrue(body.contains("<script src=\"app.js\"></script>"), body);
                assertFalse(body.matches("(?s).*<script(?![^>]*\\bsrc=)[^>]*>.*"), "no inline script: " + body);
                assertFalse(body.matches("(?s).*\\son[a-z]+=.*"), "no inline event handler: " + body);
            } else {
                assertTrue(body.contains("X-XSRF-TOKEN"), "the page's script sends the CSRF token");
            }
        }
    }

    private static void checkHeaders(EntityExchangeResult<String> r) {
        HttpHeaders h = r.getResponseHeaders();
        String csp = h.getFirst("Content-Security-Policy");
        assertNotNull(csp, r.getUrl() + ": " + h);
        assertTrue(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), csp);
        assertFalse(csp.contains("unsafe-inline") || csp.contains("unsafe-eval"), csp);
        assertEquals("DENY", h.getFirst("X-Frame-Options"), r.getUrl().toString());
        assertEquals("nosniff", h.getFirst("X-Content-Type-Options"), r.getUrl().toString());
        assertEquals("same-origin", h.getFirst("Referrer-Policy"), r.getUrl().toString());
    }

    @Test
    void aCredentialsFileOthersCanReadStopsTheStart() throws IOException {
        Path file = dir.resolve("loose");
        Credentials.addToken(file, "ops", Role.OPERATOR);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
        Throwable e = assertThrows(
                Throwable.class,
                () -> new SpringApplicationBuilder(ManagementApplication.class)
                        .run("--server.port=0", "--ubd.security.credentials-file=" + file)
                        .close());
        Throwable cause = e;
        while (!(cause instanceof CredentialsFileException) && cause.getCause() != null) {
            cause = cause.getCause();
        }
        assertTrue(cause instanceof CredentialsFileException, "the start failed for another reason: " + e);
        assertEquals(
                "credentials file " + file + ": has mode 0644 (rw-r--r--), but it holds the service's "
                        + "credentials and must be readable by its owner only (mode 0600): run chmod 600 " + file,
                cause.getMessage());
        // Nor is a token added to it.
        assertThrows(CredentialsFileException.class, () -> Credentials.addToken(file, "more", Role.READER));
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        assertEquals(1, Credentials.load(file).tokenCount());
    }
}

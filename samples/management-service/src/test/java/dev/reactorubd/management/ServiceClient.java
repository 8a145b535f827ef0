package dev.reactorubd.management;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.web.reactive.function.client.WebClient;

/**
 * Starts the service in this JVM on a free port and talks HTTP to it, every call bounded. The service gets a fresh
 * owner-only credentials file with an operator token (sent by default), a reader token and an operator user of the
 * login page ({@link #USER}, {@link #PASSWORD}).
 */
final class ServiceClient implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(120);
    static final String USER = "admin";
    static final String PASSWORD = "correct horse battery staple";
    final ConfigurableApplicationContext context;
    final String base;
    final Path credentialsFile;
    final String operatorToken;
    final String readerToken;
    /** The token this client sends, or null for none. */
    private final String token;
    /** Whether this client started the service (and so stops it). */
    private final boolean owner;

    final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(30)).build();

    /** Starts the application with the given extra properties ("name=value"). */
    ServiceClient(String... properties) {
        // The test class path also has slf4j-simple (the library's tests): Spring Boot leaves logging to SLF4J.
        System.setProperty("org.springframework.boot.logging.LoggingSystem", "none");
        try {
            credentialsFile = Files.createTempDirectory("ubd-credentials").resolve("credentials");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        operatorToken = Credentials.addToken(credentialsFile, "test-operator", Role.OPERATOR);
        readerToken = Credentials.addToken(credentialsFile, "test-reader", Role.READER);
        Credentials.addUser(credentialsFile, USER, Role.OPERATOR, PASSWORD);
        token = operatorToken;
        owner = true;
        // As command-line arguments: they win over application.properties (builder properties would not).
        String[] args = new String[properties.length + 2];
        args[0] = "--server.port=0";
        args[1] = "--ubd.security.credentials-file=" + credentialsFile;
        for (int i = 0; i < properties.length; i++) {
            args[i + 2] = "--" + properties[i];
        }
        context = new SpringApplicationBuilder(ManagementApplication.class).run(args);
        base = "http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port");
    }

    private ServiceClient(ServiceClient of, String token) {
        this.context = of.context;
        this.base = of.base;
        this.credentialsFile = of.credentialsFile;
        this.operatorToken = of.operatorToken;
        this.readerToken = of.readerToken;
        this.token = token;
        this.owner = false;
    }

    /** {@return a client of the same service that sends the reader's token} */
    ServiceClient asReader() {
        return new ServiceClient(this, readerToken);
    }

    /** {@return a client of the same service that sends no credentials} */
    ServiceClient anonymous() {
        return new ServiceClient(this, null);
    }

    /** {@return a WebClient of the service sending this client's token} */
    WebClient webClient() {
        WebClient.Builder b = WebClient.builder().baseUrl(base);
        if (token != null) {
            b.defaultHeader("Authorization", "Bearer " + token);
        }
        return b.build();
    }

    record Response(int status, String contentType, String body) {}

    Response send(String method, String path, String json) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .timeout(WAIT)
                .header("Accept", "application/json, application/problem+json, text/plain, */*");
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        if (json != null) {
            b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(json));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        try {
            HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
            return new Response(
                    r.statusCode(), r.headers().firstValue("Content-Type").orElse(""), r.body());
        } catch (IOException e) {
            throw new AssertionError(method + " " + path + " failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    Response get(String path) {
        return send("GET", path, null);
    }

    Response post(String path, String json) {
        return send("POST", path, json);
    }

    Response delete(String path) {
        return send("DELETE", path, null);
    }

    /** The first JSON number or string field {@code name} of a body (enough for these flat answers). */
    static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(name)
                        + "\"\\s*:\\s*(\"((?:[^\"\\\\]|\\\\.)*)\"|[-0-9.eE]+|true|false|null)")
                .matcher(json);
        if (!m.find()) {
            throw new AssertionError("no field " + name + " in " + json);
        }
        return m.group(2) != null ? m.group(2) : m.group(1);
    }

    /** The status of an {@code /actuator/health} body as a whole (its components have theirs). */
    static String healthStatus(String body) {
        return String.valueOf(new tools.jackson.databind.json.JsonMapper()
                .readValue(body, Map.class)
                .get("status"));
    }

    /** The sum of a Prometheus sample over the series whose labels include every one of {@code labels}. */
    static double prometheus(String scrape, String metric, Map<String, String> labels) {
        double sum = 0;
        for (String line : scrape.split("\n")) {
            if (!line.startsWith(metric + "{")) {
                continue;
            }
            String labelPart = line.substring(metric.length() + 1, line.indexOf('}'));
            boolean all = labels.entrySet().stream()
                    .allMatch(e -> labelPart.contains(e.getKey() + "=\"" + e.getValue() + "\""));
            if (all) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    /** Stops the service (only the client that started it does) and removes the credentials file. */
    @Override
    public void close() {
        if (!owner) {
            return;
        }
        context.close();
        try {
            Files.deleteIfExists(credentialsFile);
            Files.deleteIfExists(credentialsFile.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}

package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.health.actuate.endpoint.HttpCodeStatusMapper;
import org.springframework.boot.health.actuate.endpoint.StatusAggregator;
import org.springframework.boot.health.contributor.Status;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.codec.ServerSentEvent;

/**
 * The API on the host, where there is no ublk driver: problem bodies for bad requests and for the missing driver, the
 * page and its scripts, the statistics stream and the Prometheus endpoint. Devices themselves are exercised in the VM
 * ({@link ManagementServiceDeviceTest}).
 */
class ManagementApiTest {
    private static ServiceClient service;

    @BeforeAll
    static void start() {
        service = new ServiceClient();
    }

    @AfterAll
    static void stop() {
        service.close();
    }

    private static void assertProblem(ServiceClient.Response r, int status, String detailPart) {
        assertEquals(status, r.status(), r.body());
        assertTrue(r.contentType().startsWith("application/problem+json"), r.contentType());
        assertEquals(String.valueOf(status), ServiceClient.field(r.body(), "status"));
        String detail = ServiceClient.field(r.body(), "detail");
        assertTrue(detail.contains(detailPart), "detail '" + detail + "' should contain '" + detailPart + "'");
    }

    @Test
    void badSpecsAreProblems() {
        assertProblem(
                service.post("/api/devices", "{\"target\":\"bogus:1\"}"),
                400,
                "'bogus:1' is not a target spec: write one of null:SIZE, memory:SIZE");
        assertProblem(
                service.post("/api/devices", "{\"target\":\"memory\"}"), 400, "write memory:SIZE, e.g. memory:64M");
        assertProblem(service.post("/api/devices", "{\"target\":\"memory:64Q\"}"), 400, "is not a size");
        assertProblem(service.post("/api/devices", "{\"target\":\"mirror(memory:64M)\"}"), 400, "needs at least two");
        assertProblem(service.post("/api/devices", "{\"target\":\"file:/x?fast\"}"), 400, "use ?direct");
        assertProblem(service.post("/api/devices", "{}"), 400, "send a JSON body with a \\\"target\\\" spec");
        assertProblem(
                service.post("/api/devices", "{\"target\":\"memory:64M\",\"queues\":0}"),
                400,
                "queues must be from 1 to 64");
        ServiceClient.Response notJson = service.post("/api/devices", "target=memory:64M");
        assertEquals(400, notJson.status(), notJson.body());
        assertTrue(notJson.contentType().startsWith("application/problem+json"), notJson.contentType());
    }

    @Test
    void unknownDevicesAreNotFound() {
        assertProblem(service.get("/api/devices/7"), 404, "serves no device 7");
        assertProblem(service.delete("/api/devices/7"), 404, "GET /api/devices lists the ones it does");
        assertProblem(service.get("/api/devices/seven"), 400, "");
        assertEquals("[]", service.get("/api/devices").body());
    }

    @Test
    void withoutTheDriverCreatingIsUnavailable() {
        assumeFalse(Files.exists(Path.of("/dev/ublk-control")), "this host has ublk: the VM tests cover it");
        assertProblem(
                service.post("/api/devices", "{\"target\":\"memory:64M\",\"queues\":2}"), 503, "modprobe ublk_drv");
        // Nothing is left behind, and the next request tries again.
        assertEquals("[]", service.get("/api/devices").body());
        assertProblem(service.post("/api/devices", "{\"target\":\"null:1G\"}"), 503, "modprobe ublk_drv");
    }

    @Test
    void mirrorRequestsOnAnUnknownDeviceAreNotFound() {
        assertProblem(service.post("/api/devices/7/mirror/replicas/1/reinstate", null), 404, "serves no device 7");
        assertProblem(service.post("/api/devices/7/mirror/replicas/one/reinstate", null), 400, "");
    }

    @Test
    void healthIsUpWithoutMirrorsAndADegradedMirrorIsA503() {
        ServiceClient.Response health = service.get("/actuator/health");
        assertEquals(200, health.status(), health.body());
        assertEquals("UP", ServiceClient.healthStatus(health.body()), health.body());
        assertTrue(health.body().contains("\"mirrors\":{\"status\":\"UP\""), health.body());
        assertEquals(200, service.get("/actuator/health/liveness").status(), "the liveness probe");
        assertEquals(200, service.get("/actuator/health/readiness").status(), "the readiness probe");
        // What the endpoint does with the mirrors' statuses: DEGRADED between DOWN and UP, answered with 503.
        HttpCodeStatusMapper codes = service.context.getBean(HttpCodeStatusMapper.class);
        assertEquals(503, codes.getStatusCode(MirrorHealthIndicator.DEGRADED));
        assertEquals(503, codes.getStatusCode(Status.DOWN));
        assertEquals(503, codes.getStatusCode(Status.OUT_OF_SERVICE));
        assertEquals(200, codes.getStatusCode(Status.UP));
        StatusAggregator order = service.context.getBean(StatusAggregator.class);
        assertEquals(
                MirrorHealthIndicator.DEGRADED, order.getAggregateStatus(Status.UP, MirrorHealthIndicator.DEGRADED));
        assertEquals(Status.DOWN, order.getAggregateStatus(Status.DOWN, MirrorHealthIndicator.DEGRADED));
    }

    @Test
    void ownLoopsByDefault() {
        String server = service.get("/api/server").body();
        assertEquals("false", ServiceClient.field(server, "sharedEventLoops"), server);
        assertTrue(ServiceClient.field(server, "requestThread").startsWith("reactor-http"), server);
    }

    @Test
    void pageAndScriptsAreServedLocally() {
        ServiceClient.Response page = service.get("/");
        assertEquals(200, page.status());
        assertTrue(page.body().contains("id=\"create-form\"") && page.body().contains("src=\"app.js\""), page.body());
        assertTrue(!page.body().contains("http://") && !page.body().contains("https://"), "no external resource");
        ServiceClient.Response js = service.get("/app.js");
        assertEquals(200, js.status());
        assertTrue(js.body().contains("new EventSource(\"/api/stats\")"));
        assertEquals(200, service.get("/app.css").status());
    }

    @Test
    void statisticsStreamAndPrometheus() {
        List<ServerSentEvent<StatsFrame>> frames = service.asReader()
                .webClient()
                .get()
                .uri("/api/stats")
                .retrieve()
                .bodyToFlux(new ParameterizedTypeReference<ServerSentEvent<StatsFrame>>() {})
                .take(2)
                .collectList()
                .block(Duration.ofSeconds(30));
        assertEquals(2, frames.size());
        assertEquals("stats", frames.get(1).event());
        assertEquals(List.of(), frames.get(1).data().devices());
        ServiceClient.Response scrape = service.asReader().get("/actuator/prometheus");
        assertEquals(200, scrape.status());
        assertTrue(scrape.body().contains("jvm_memory_used_bytes"), "a Prometheus scrape");
    }
}

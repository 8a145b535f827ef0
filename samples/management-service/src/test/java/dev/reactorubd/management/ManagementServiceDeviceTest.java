package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.codec.ServerSentEvent;
import reactor.core.Disposable;

/**
 * The management service against the real ublk driver, with device queues on the HTTP server's io_uring loops: a
 * memory device created over HTTP, fio against it, the event stream's and Prometheus' counts checked against fio's,
 * the device deleted over HTTP; bad requests get problem bodies.
 */
@DeviceTest
class ManagementServiceDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static final int IOS = 1500;
    private static ServiceClient service;

    @BeforeAll
    static void start() {
        try (UbdControl control = UbdControl.open()) {
            Devices.removeLeftovers(control);
        }
        service = new ServiceClient("ubd.share-event-loops=true", "ubd.event-loops=2");
    }

    @AfterAll
    static void stop() {
        if (service != null) {
            service.close();
        }
    }

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("reactor-http"), "blocking calls on HTTP threads");
    }

    /** fio's issued reads and writes, from its "issued rwts: total=R,W,T,D" line. */
    private static long[] issued(String fioOutput) {
        Matcher m = Pattern.compile("issued rwts: total=(\\d+),(\\d+),(\\d+)").matcher(fioOutput);
        assertTrue(m.find(), fioOutput);
        return new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3))};
    }

    private static String fio(String path, String rw) {
        Vm.Result r = Vm.sh(
                600,
                "fio --name=" + rw + " --filename=" + path + " --rw=" + rw + " --bs=4k --direct=1"
                        + " --ioengine=psync --number_ios=" + IOS + " --size=64M --randrepeat=0");
        assertEquals(0, r.exitCode(), r.output());
        r.output().lines().filter(l -> l.contains("IOPS=")).forEach(l -> System.out.println("fio " + rw + ":" + l));
        return r.output();
    }

    private static double requests(String scrape, String dev, String op) {
        return ServiceClient.prometheus(scrape, "ubd_requests_total", Map.of("device", dev, "op", op));
    }

    @Test
    void deviceOverHttpCountedAsFioDidIt() throws Exception {
        ServiceClient.Response created =
                service.post("/api/devices", "{\"target\":\"memory:64M\",\"queues\":2,\"depth\":64}");
        assertEquals(201, created.status(), created.body());
        String dev = ServiceClient.field(created.body(), "id");
        String path = ServiceClient.field(created.body(), "path");
        assertEquals("/dev/ublkb" + dev, path);
        assertTrue(Files.exists(Path.of(path)), path + " exists");
        assertEquals(
                "LIVE", ServiceClient.field(service.get("/api/devices/" + dev).body(), "state"));
        String server = service.get("/api/server").body();
        assertEquals("true", ServiceClient.field(server, "sharedEventLoops"), server);
        assertTrue(
                ServiceClient.field(server, "requestThread").startsWith("ubd-shared"),
                "HTTP on the shared loops: " + server);
        assertEquals("true", ServiceClient.field(server, "queuesOnSharedLoops"), server);
        assertTrue(service.get("/api/devices").body().contains("\"target\":\"memory:67108864\""));

        // The kernel's partition scan reads at start: settle, then count from there.
        Thread.sleep(1000);
        String before = service.get("/actuator/prometheus").body();
        double reads0 = requests(before, dev, "READ");
        double writes0 = requests(before, dev, "WRITE");
        assertTrue(before.contains("ubd_latency_seconds_bucket{"), "the latency histogram is published");

        List<DeviceStats> frames = new CopyOnWriteArrayList<>();
        // The reader's token: it sees the statistics and the metrics, and cannot create (below).
        Disposable stream = service.asReader()
                .webClient()
                .get()
                .uri("/api/devices/" + dev + "/stats")
                .retrieve()
                .bodyToFlux(new ParameterizedTypeReference<ServerSentEvent<DeviceStats>>() {})
                .subscribe(e -> frames.add(e.data()), e -> {});
        try {
            long[] w = issued(fio(path, "randwrite"));
            long[] r = issued(fio(path, "randread"));
            assertEquals(IOS, w[1]);
            assertEquals(IOS, r[0]);

            String after = service.asReader().get("/actuator/prometheus").body();
            assertEquals(w[1], requests(after, dev, "WRITE") - writes0, "WRITE requests counted = fio's writes");
            assertEquals(r[0], requests(after, dev, "READ") - reads0, "READ requests counted = fio's reads");
            assertEquals(
                    IOS * 4096.0,
                    ServiceClient.prometheus(after, "ubd_data_bytes_total", Map.of("device", dev, "op", "WRITE")),
                    "bytes written");
            assertTrue(
                    ServiceClient.prometheus(after, "ubd_latency_seconds_count", Map.of("device", dev)) >= 2 * IOS,
                    "every request timed");
            // The histogram resolves below a millisecond (docs/metrics.md): printed for the record of a fio run.
            List<String> buckets = after.lines()
                    .filter(l -> l.startsWith("ubd_latency_seconds_bucket{")
                            && l.contains("device=\"" + dev + "\"")
                            && l.contains("op=\"READ\""))
                    .toList();
            System.out.println("ubd.latency of fio's " + IOS + " 4k random reads on device " + dev + ":\n  "
                    + String.join("\n  ", buckets));
            assertTrue(
                    buckets.stream()
                                    .map(l -> l.replaceAll(".*le=\"([^\"]+)\".*", "$1"))
                                    .filter(le -> !le.equals("+Inf"))
                                    .filter(le -> Double.parseDouble(le) < 0.001)
                                    .count()
                            >= 5,
                    "buckets below a millisecond are published: " + buckets);
            assertEquals(0, ServiceClient.prometheus(after, "ubd_errors_total", Map.of("device", dev)));
            assertEquals(0, ServiceClient.prometheus(after, "ubd_inflight", Map.of("device", dev)));
            double allReads = requests(after, dev, "READ");
            double allWrites = requests(after, dev, "WRITE");

            // The stream catches up within a few samples, and saw the IO as it happened.
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (frames.isEmpty()
                    || frames.getLast().reads() != (long) allReads
                    || frames.getLast().writes() != (long) allWrites) {
                assertTrue(
                        System.nanoTime() < deadline,
                        "stream totals did not reach Prometheus' (" + allReads + " reads, " + allWrites + " writes): "
                                + (frames.isEmpty() ? "no frame" : frames.getLast()));
                Thread.sleep(200);
            }
            assertTrue(frames.stream().anyMatch(f -> f.writeIops() > 0), "write IOPS seen: " + frames);
            assertTrue(frames.stream().anyMatch(f -> f.readIops() > 0), "read IOPS seen: " + frames);
            assertTrue(frames.stream().anyMatch(f -> f.p99Millis() != null && f.p99Millis() > 0), "latency seen");
            System.out.println("stream: " + frames.size() + " frames, last " + frames.getLast());

            String view = service.get("/api/devices/" + dev).body();
            long served = Pattern.compile("\"completed\":(\\d+)")
                    .matcher(view)
                    .results()
                    .mapToLong(x -> Long.parseLong(x.group(1)))
                    .sum();
            assertEquals((long) (allReads + allWrites), served, "per-queue counts: " + view);
        } finally {
            stream.dispose();
        }

        ServiceClient.Response deleted = service.delete("/api/devices/" + dev);
        assertEquals(204, deleted.status(), deleted.body());
        assertFalse(Files.exists(Path.of(path)), path + " is gone");
        assertFalse(Vm.deviceExists(Integer.parseInt(dev)), "device deleted");
        assertEquals(404, service.get("/api/devices/" + dev).status());
        assertEquals(
                0,
                ServiceClient.prometheus(
                        service.get("/actuator/prometheus").body(), "ubd_requests_total", Map.of("device", dev)),
                "the device's meters are gone");
    }

    @Test
    void badRequestsGetProblems() {
        ServiceClient.Response bad = service.post("/api/devices", "{\"target\":\"memroy:64M\"}");
        assertEquals(400, bad.status(), bad.body());
        assertTrue(bad.contentType().startsWith("application/problem+json"));
        assertTrue(ServiceClient.field(bad.body(), "detail").contains("'memroy:64M' is not a target spec"));

        // No file directory is configured: any file is refused by name, whether it exists or not.
        for (String file : List.of("/nonexistent/x.img", "/etc/passwd", "/dev/sda")) {
            ServiceClient.Response refused = service.post("/api/devices", "{\"target\":\"file:" + file + "\"}");
            assertEquals(403, refused.status(), refused.body());
            assertEquals("FILE_DIRECTORY", ServiceClient.field(refused.body(), "rule"), refused.body());
        }
        ServiceClient.Response big = service.post("/api/devices", "{\"target\":\"memory:8T\"}");
        assertEquals(403, big.status(), big.body());
        assertEquals("MEMORY", ServiceClient.field(big.body(), "rule"), big.body());
        ServiceClient.Response reader = service.asReader().post("/api/devices", "{\"target\":\"null:16M\"}");
        assertEquals(403, reader.status(), "a reader cannot create: " + reader.body());
        assertEquals(401, service.anonymous().get("/api/devices").status());
        assertEquals("[]", service.asReader().get("/api/devices").body(), "nothing made by the refused requests");

        ServiceClient.Response first = service.post("/api/devices", "{\"target\":\"null:16M\",\"id\":7}");
        assertEquals(201, first.status(), first.body());
        ServiceClient.Response again = service.post("/api/devices", "{\"target\":\"null:16M\",\"id\":7}");
        assertEquals(409, again.status(), again.body());
        assertTrue(ServiceClient.field(again.body(), "detail").contains("delete it first"), again.body());
        assertEquals(204, service.delete("/api/devices/7").status());
        assertEquals(404, service.delete("/api/devices/7").status());
    }
}

package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.targets.compose.ReplicaState;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/**
 * A persistent mirror served by the management service, watched and repaired over HTTP: the device JSON shows its
 * replicas, a replica that fails makes {@code /actuator/health} answer 503 DEGRADED (the liveness probe stays UP),
 * reinstating an IN_SYNC replica is a 409 problem, reinstating the FAILED one is a 202 and the replica is IN_SYNC
 * again after its resync, with the same data as the other; the health is UP again.
 *
 * <p>The failure is real: replica 0 is a sparse file on a small tmpfs, which is filled up so that a write to a region
 * not yet allocated fails with ENOSPC (replica 0 is the source of the new mirror's first copy, so its data regions
 * are not allocated by that copy); emptying the tmpfs repairs it.
 */
@DeviceTest
class MirrorApiDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static final String SMALL = "/run/ubd-mgmt-small";
    private static final String BIG = "/run/ubd-mgmt-big";
    /** The service's target policy: files only in the two replicas' directories. */
    static final String FILE_DIRECTORIES = "ubd.targets.file-directories=" + SMALL + "," + BIG;
    /** The mirror: replica 0 on the small tmpfs. */
    static final String SPEC = "mirror(file:" + SMALL + "/r0.img,file:" + BIG + "/r1.img)";

    private static final JsonMapper JSON = new JsonMapper();
    private static ServiceClient service;

    @BeforeAll
    static void start() {
        try (UbdControl control = UbdControl.open()) {
            Devices.removeLeftovers(control);
        }
        createReplicas();
        service = new ServiceClient(FILE_DIRECTORIES);
    }

    /** Two blank 8 MiB replica files, replica 0's on a 12 MiB tmpfs. */
    static void createReplicas() {
        Vm.sh(
                        60,
                        "set -e; mkdir -p " + SMALL + " " + BIG + "; mount -t tmpfs -o size=12M tmpfs " + SMALL
                                + "; truncate -s 8M " + SMALL + "/r0.img " + BIG + "/r1.img")
                .requireSuccess();
    }

    static void removeReplicas() {
        Vm.sh(60, "umount " + SMALL + "; rm -rf " + SMALL + " " + BIG + " /run/ubd-mgmt-data");
    }

    /**
     * Fills replica 0's tmpfs, then writes 256 KiB of random bytes (also in {@code /run/ubd-mgmt-data}) to the device
     * at 2.5 MiB, where replica 0 has nothing allocated yet: ENOSPC there, and the mirror marks replica 0 FAILED.
     */
    static void failReplica0(String devicePath) {
        failReplica0(devicePath, 40);
    }

    /** {@link #failReplica0(String)} writing at {@code seek} 64 KiB blocks: somewhere replica 0 has not allocated. */
    static void failReplica0(String devicePath, int seek) {
        Vm.sh(
                60,
                "dd if=/dev/zero of=" + SMALL + "/filler bs=64k 2>/dev/null; dd if=/dev/zero of=" + SMALL
                        + "/filler2 bs=4k 2>/dev/null; sync; df -k " + SMALL);
        Vm.sh(
                        60,
                        "set -e; head -c 262144 /dev/urandom > /run/ubd-mgmt-data; dd if=/run/ubd-mgmt-data of="
                                + devicePath + " bs=64k seek=" + seek + " oflag=direct conv=notrunc status=none")
                .requireSuccess();
    }

    /** Empties replica 0's tmpfs of everything but the replica: writes to it succeed again. */
    static void repairReplica0() {
        Vm.sh(60, "rm -f " + SMALL + "/filler " + SMALL + "/filler2").requireSuccess();
    }

    @AfterAll
    static void stop() {
        if (service != null) {
            service.close();
        }
        removeReplicas();
    }

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("reactor-http"), "blocking calls on HTTP threads");
    }

    private static DeviceView device(int id) {
        ServiceClient.Response r = service.get("/api/devices/" + id);
        assertEquals(200, r.status(), r.body());
        return JSON.readValue(r.body(), DeviceView.class);
    }

    private static MirrorView awaitMirror(int id, Predicate<MirrorView> until, String what) throws Exception {
        long end = System.nanoTime() + WAIT.toNanos();
        while (true) {
            MirrorView m = device(id).mirrors().get(0);
            if (until.test(m)) {
                return m;
            }
            assertTrue(System.nanoTime() < end, "timed out waiting for " + what + ": " + m);
            Thread.sleep(100);
        }
    }

    private static List<ReplicaState> states(MirrorView m) {
        return m.replicas().stream().map(MirrorView.ReplicaView::state).toList();
    }

    @Test
    void aFailedReplicaIsSeenInTheApiAndTheHealthAndReinstatedOverHttp() throws Exception {
        ServiceClient.Response created = service.post("/api/devices", "{\"target\":\"" + SPEC + "\",\"queues\":2}");
        assertEquals(201, created.status(), created.body());
        DeviceView dev = JSON.readValue(created.body(), DeviceView.class);
        int id = dev.id();
        assertEquals(1, dev.mirrors().size(), created.body());
        MirrorView m = awaitMirror(id, x -> !x.degraded(), "the new mirror's first copy");
        assertNotNull(m.mirrorId());
        assertEquals(
                List.of("file:" + SMALL + "/r0.img", "file:" + BIG + "/r1.img"),
                m.replicas().stream().map(MirrorView.ReplicaView::target).toList());
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), states(m));
        assertEquals(m.regions(), m.copiedRegions(), "the first copy copied every region to replica 1");
        assertTrue(service.get("/api/devices").body().contains("\"mirrors\":[{\"index\":0"), "the list shows it");
        ServiceClient.Response health = service.get("/actuator/health");
        assertEquals(200, health.status(), health.body());

        ServiceClient.Response conflict = service.post("/api/devices/" + id + "/mirror/replicas/1/reinstate", null);
        assertEquals(409, conflict.status(), conflict.body());
        assertTrue(conflict.contentType().startsWith("application/problem+json"), conflict.contentType());
        assertTrue(
                ServiceClient.field(conflict.body(), "detail")
                        .contains("is IN_SYNC: only a FAILED replica can be " + "reinstated"),
                conflict.body());

        String path = dev.path();
        failReplica0(path);
        m = awaitMirror(id, x -> x.replicas().get(0).state() == ReplicaState.FAILED, "replica 0 FAILED");
        assertTrue(m.degraded());
        assertEquals(ReplicaState.IN_SYNC, m.replicas().get(1).state());
        assertTrue(m.replicas().get(0).dirtyRegions() >= 1, "what it missed is recorded: " + m);
        health = service.get("/actuator/health");
        assertEquals(503, health.status(), health.body());
        assertEquals("DEGRADED", ServiceClient.healthStatus(health.body()), health.body());
        assertTrue(health.body().contains("\"states\":[\"FAILED\",\"IN_SYNC\"]"), health.body());
        assertEquals(200, service.get("/actuator/health/liveness").status(), "a degraded mirror restarts nothing");
        // The device still serves what was written, from replica 1.
        Vm.sh(60, "dd if=" + path + " bs=64k skip=40 count=4 iflag=direct status=none | cmp - /run/ubd-mgmt-data")
                .requireSuccess();

        repairReplica0();
        ServiceClient.Response accepted = service.post("/api/devices/" + id + "/mirror/replicas/0/reinstate", null);
        assertEquals(202, accepted.status(), accepted.body());
        MirrorView started = JSON.readValue(accepted.body(), MirrorView.class);
        assertTrue(started.replicas().get(0).state() != ReplicaState.FAILED, accepted.body());
        m = awaitMirror(id, x -> !x.degraded(), "replica 0 back IN_SYNC");
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), states(m));
        assertEquals(0, m.replicas().get(0).dirtyRegions());
        health = service.get("/actuator/health");
        assertEquals(200, health.status(), health.body());
        assertEquals("UP", ServiceClient.healthStatus(health.body()), health.body());
        // Both replicas hold the same data (the superblocks differ: each names its slot).
        long dataOffset = 1 << 20;
        Vm.sh(60, "cmp -i " + dataOffset + " " + SMALL + "/r0.img " + BIG + "/r1.img")
                .requireSuccess();

        ServiceClient.Response deleted = service.delete("/api/devices/" + id);
        assertEquals(204, deleted.status(), deleted.body());
    }

    @Test
    void aFailedReplicaIsReplacedOverHttpWhileWritesGoOnAndTheReplacementEndsIdentical() throws Exception {
        Vm.sh(
                        60,
                        "set -e; mkdir -p " + BIG + "; truncate -s 8M " + BIG + "/s0.img " + BIG + "/s1.img " + BIG
                                + "/s2.img; truncate -s 4M " + BIG
                                + "/tiny.img; head -c 4194304 /dev/urandom > /run/ubd-mgmt-data2")
                .requireSuccess();
        String spec = "mirror(file:" + BIG + "/s0.img,file:" + BIG + "/s1.img)";
        ServiceClient.Response created = service.post("/api/devices", "{\"target\":\"" + spec + "\",\"queues\":2}");
        assertEquals(201, created.status(), created.body());
        DeviceView dev = JSON.readValue(created.body(), DeviceView.class);
        int id = dev.id();
        awaitMirror(id, x -> !x.degraded(), "the new mirror's first copy");
        String replace = "/api/devices/" + id + "/mirror/replicas/1/replace";

        ServiceClient.Response small = service.post(replace, "{\"target\":\"file:" + BIG + "/tiny.img\"}");
        assertEquals(400, small.status(), small.body());
        assertTrue(ServiceClient.field(small.body(), "detail").contains("give a larger one"), small.body());
        ServiceClient.Response none = service.post(replace, "{}");
        assertEquals(400, none.status(), none.body());
        ServiceClient.Response outside = service.post(replace, "{\"target\":\"file:/etc/passwd\"}");
        assertEquals(403, outside.status(), outside.body());
        assertEquals("FILE_DIRECTORY", ServiceClient.field(outside.body(), "rule"), outside.body());

        // 4 MiB of direct 4 KiB writes run while replica 1 is replaced by a blank file.
        CompletableFuture<ServiceClient.Response> replaced = CompletableFuture.supplyAsync(() -> {
            try {
                Thread.sleep(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return service.post(replace, "{\"target\":\"file:" + BIG + "/s2.img\"}");
        });
        Vm.sh(300, "dd if=/run/ubd-mgmt-data2 of=" + dev.path() + " bs=4k oflag=direct conv=notrunc status=none")
                .requireSuccess();
        ServiceClient.Response accepted = replaced.get(60, TimeUnit.SECONDS);
        assertEquals(202, accepted.status(), accepted.body());
        MirrorView started = JSON.readValue(accepted.body(), MirrorView.class);
        assertEquals("file:" + BIG + "/s2.img", started.replicas().get(1).target());
        MirrorView m = awaitMirror(id, x -> !x.degraded(), "the replacement IN_SYNC");
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), states(m));
        assertEquals("file:" + BIG + "/s2.img", m.replicas().get(1).target());
        Vm.sh(60, "dd if=" + dev.path() + " bs=1M count=4 iflag=direct status=none | cmp - /run/ubd-mgmt-data2")
                .requireSuccess();
        Vm.sh(60, "cmp -i " + (1 << 20) + " " + BIG + "/s0.img " + BIG + "/s2.img")
                .requireSuccess();

        ServiceClient.Response deleted = service.delete("/api/devices/" + id);
        assertEquals(204, deleted.status(), deleted.body());
        Vm.sh(
                60,
                "rm -f " + BIG + "/s0.img " + BIG + "/s1.img " + BIG + "/s2.img " + BIG + "/tiny.img "
                        + "/run/ubd-mgmt-data2");
    }
}

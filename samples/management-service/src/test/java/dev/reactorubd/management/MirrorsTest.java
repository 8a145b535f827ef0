package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.FaultyBackend;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.MirrorOptions;
import dev.reactorubd.targets.compose.ReplicaState;
import dev.reactorubd.targets.spec.TargetSpec;
import dev.reactorubd.testing.BlockingCallRecorder;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.Status;
import org.springframework.http.HttpStatus;

/**
 * What the API and the health endpoint make of a real persistent mirror (assembled over memory replicas behind fault
 * switches, no device): its view, the reinstate of a FAILED replica and the refusal of an IN_SYNC one, and the
 * health's status through a failure and a reinstate. The HTTP side is {@link ManagementApiTest} (the status mapping)
 * and {@link MirrorApiDeviceTest} (everything over HTTP, against a device).
 */
class MirrorsTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final String SPEC = "mirror(memory:8M,memory:8M)";
    /** The spec as the API shows it, normalised. */
    private static final String TEXT = "mirror(memory:8388608,memory:8388608)";

    private FaultyBackend a;
    private FaultyBackend b;
    private MirrorBackend mirror;
    private TargetSpec.Opened opened;

    @BeforeEach
    void assemble() {
        a = Backends.from(new MemoryBackend(8 << 20)).faults();
        b = Backends.from(new MemoryBackend(8 << 20)).faults();
        mirror = Backends.assembleMirror(MirrorOptions.defaults(), a, b).block(WAIT);
        opened = new TargetSpec.Opened(TargetSpec.parse(SPEC), mirror, List.of(mirror));
        // A new mirror copies replica 0 to replica 1 first.
        await(() -> !mirror.isDegraded(), "the new mirror's first full copy");
    }

    @AfterEach
    void close() {
        opened.close().block(WAIT);
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("parallel-"), "blocking calls on parallel threads");
    }

    private static void await(BooleanSupplier c, String what) {
        long end = System.nanoTime() + WAIT.toNanos();
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting: " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }

    private void failReplica1() {
        b.failWrites(Errno.EIO);
        mirror.write(3 * MirrorBackend.DEFAULT_REGION_BYTES, Unpooled.wrappedBuffer(new byte[4096]), false)
                .block(WAIT);
        assertEquals(ReplicaState.FAILED, mirror.state(1));
    }

    private Status health() {
        TreeMap<Integer, List<MirrorView>> byDevice = new TreeMap<>();
        byDevice.put(4, Mirrors.views(opened, Map.of()));
        return MirrorHealthIndicator.health(byDevice).getStatus();
    }

    @Test
    void theViewShowsTheMirrorItsReplicasAndTheirSpecs() {
        List<MirrorView> views = Mirrors.views(opened, Map.of());
        assertEquals(1, views.size());
        MirrorView v = views.get(0);
        assertEquals(0, v.index());
        assertEquals(TEXT, v.target());
        assertEquals(mirror.mirrorId().toString(), v.mirrorId());
        assertTrue(v.events() > 0, "a persistent mirror counts its superblock rounds");
        assertEquals(false, v.degraded());
        assertEquals((mirror.size() + v.regionBytes() - 1) / v.regionBytes(), v.regions());
        assertEquals(v.regions(), v.copiedRegions(), "the first full copy copied every region");
        assertEquals(
                List.of(
                        new MirrorView.ReplicaView(0, "memory:8388608", ReplicaState.IN_SYNC, 0, 100.0),
                        new MirrorView.ReplicaView(1, "memory:8388608", ReplicaState.IN_SYNC, 0, 100.0)),
                v.replicas());
        assertEquals(Status.UP, health());

        failReplica1();
        v = Mirrors.views(opened, Map.of()).get(0);
        assertTrue(v.degraded());
        assertEquals(ReplicaState.FAILED, v.replicas().get(1).state());
        assertEquals(1, v.replicas().get(1).dirtyRegions(), "the write it missed");
        assertNull(v.replicas().get(1).resyncPercent());
        assertEquals(100.0, v.replicas().get(0).resyncPercent());
    }

    @Test
    void aFailedReplicaIsReinstatedAndTheHealthFollows() {
        failReplica1();
        assertEquals(MirrorHealthIndicator.DEGRADED, health());
        Health h = MirrorHealthIndicator.health(new TreeMap<>(Map.of(4, Mirrors.views(opened, Map.of()))));
        assertEquals(
                Map.of(
                        "target",
                        TEXT,
                        "degraded",
                        true,
                        "states",
                        List.of("IN_SYNC", "FAILED"),
                        "dirtyRegions",
                        List.of(0L, 1L)),
                h.getDetails().get("device 4 mirror 0"));

        b.heal();
        long copiedBefore = mirror.copiedRegions();
        MirrorView started = Mirrors.reinstate(4, Mirrors.select(4, opened, null), 1, Map.of());
        assertTrue(started.replicas().get(1).state() != ReplicaState.FAILED, started.toString());
        await(() -> mirror.state(1) == ReplicaState.IN_SYNC, "replica 1 back in sync");
        assertEquals(copiedBefore + 1, mirror.copiedRegions(), "the region it missed was copied back");
        assertEquals(Status.UP, health());
    }

    @Test
    void reinstatingAReplicaThatIsNotFailedIsAConflict() {
        ApiException e =
                assertThrows(ApiException.class, () -> Mirrors.reinstate(4, Mirrors.select(4, opened, 0), 0, Map.of()));
        assertEquals(HttpStatus.CONFLICT, e.status());
        assertTrue(
                e.getMessage().contains("replica 0 of mirror 0 of device 4 is IN_SYNC: only a FAILED replica"),
                e.getMessage());
        ApiException none =
                assertThrows(ApiException.class, () -> Mirrors.reinstate(4, Mirrors.select(4, opened, 0), 2, Map.of()));
        assertEquals(HttpStatus.NOT_FOUND, none.status());
        assertEquals(ReplicaState.IN_SYNC, mirror.state(0), "nothing changed");
    }

    @Test
    void aFailedReplicaIsReplacedTheViewNamesTheReplacementAndAnUnsuitableOneIsABadRequest() {
        failReplica1();
        Map<String, String> replaced = new ConcurrentHashMap<>();
        Mirrors.Found f = Mirrors.select(4, opened, null);
        TargetSpec.Opened tooSmall =
                new TargetSpec.Opened(TargetSpec.parse("memory:4M"), new MemoryBackend(4 << 20), List.of());
        ApiException small = assertThrows(
                ApiException.class,
                () -> Mirrors.replace(4, f, 1, tooSmall, replaced).block(WAIT));
        assertEquals(HttpStatus.BAD_REQUEST, small.status());
        assertTrue(small.getMessage().contains("give a larger one"), small.getMessage());
        assertEquals(ReplicaState.FAILED, mirror.state(1), "nothing changed");

        MemoryBackend fresh = new MemoryBackend(8 << 20);
        TargetSpec.Opened replacement = new TargetSpec.Opened(TargetSpec.parse("memory:8M"), fresh, List.of());
        MirrorView v = Mirrors.replace(4, f, 1, replacement, replaced).block(WAIT);
        assertNotNull(v);
        assertEquals("memory:8388608", v.replicas().get(1).target());
        assertTrue(v.replicas().get(1).state() != ReplicaState.FAILED, v.toString());
        await(() -> mirror.state(1) == ReplicaState.IN_SYNC, "the replacement in sync");
        assertEquals(fresh, mirror.replicas().get(1));
        assertEquals(Status.UP, health());
        // A closed mirror gives up no slot: 409.
        mirror.close().block(WAIT);
        TargetSpec.Opened late =
                new TargetSpec.Opened(TargetSpec.parse("memory:8M"), new MemoryBackend(8 << 20), List.of());
        ApiException closed = assertThrows(
                ApiException.class,
                () -> Mirrors.replace(4, f, 0, late, replaced).block(WAIT));
        assertEquals(HttpStatus.CONFLICT, closed.status());
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }

    @Test
    void aTargetWithoutOrWithSeveralMirrorsMustBeNamed() {
        TargetSpec.Opened plain =
                new TargetSpec.Opened(TargetSpec.parse("memory:8M"), new MemoryBackend(8 << 20), List.of());
        assertEquals(List.of(), Mirrors.views(plain, Map.of()));
        ApiException noMirror = assertThrows(ApiException.class, () -> Mirrors.select(2, plain, null));
        assertEquals(HttpStatus.NOT_FOUND, noMirror.status());
        assertTrue(noMirror.getMessage().contains("which has no mirror"), noMirror.getMessage());

        TargetSpec spec = TargetSpec.parse("stripe:64K(" + SPEC + ",mirror(memory:8M,memory:8M))");
        MirrorBackend other = Backends.mirror(new MemoryBackend(8 << 20), new MemoryBackend(8 << 20));
        TargetSpec.Opened two =
                new TargetSpec.Opened(spec, Backends.stripe(64 << 10, mirror, other), List.of(mirror, other));
        List<MirrorView> views = Mirrors.views(two, Map.of());
        assertEquals(2, views.size());
        assertEquals(List.of(0, 1), views.stream().map(MirrorView::index).toList());
        assertNull(views.get(1).mirrorId(), "an in-memory mirror has no id");
        ApiException ambiguous = assertThrows(ApiException.class, () -> Mirrors.select(2, two, null));
        assertEquals(HttpStatus.BAD_REQUEST, ambiguous.status());
        assertTrue(ambiguous.getMessage().contains("add ?mirror=K, K from 0 to 1"), ambiguous.getMessage());
        assertEquals(
                HttpStatus.NOT_FOUND,
                assertThrows(ApiException.class, () -> Mirrors.select(2, two, 2))
                        .status());
        assertNotNull(Mirrors.select(2, two, 1));
        other.close().block(WAIT);
    }
}

package dev.reactorubd.targets.history;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.FaultyBackend;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.targets.nbd.NbdBackend;
import dev.reactorubd.targets.nbd.NbdOptions;
import dev.reactorubd.targets.nbd.NbdServers;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The history checker over composed targets on real files and a real NBD server (qemu-nbd): a seeded random mix of
 * concurrent reads, writes and flushes, with faults injected while it runs, every read checked against the history
 * ({@link History}). The seed is printed with every run (and in the failure message); set {@code -Dubd.history.seed=N}
 * to run one again. Each composition runs {@value #OPS} operations.
 */
class HistoryCheckTest {
    static final int OPS = 10_000;
    private static final long SIZE = 4L << 20;
    private static final Duration LIMIT = Duration.ofMinutes(4);

    @TempDir
    Path dir;

    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void cleanUp() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    static long seed() {
        String s = System.getProperty("ubd.history.seed");
        return s != null ? Long.parseLong(s) : System.nanoTime();
    }

    private FileBackend file(String name) {
        FileBackend f = FileBackend.open(
                dir.resolve(name), FileBackend.Options.defaults().createSize(SIZE));
        toClose.add(() -> f.close().block(Duration.ofSeconds(30)));
        return f;
    }

    private static void check(HistoryWorkload.Result r, String composition) {
        System.out.println("history check, " + composition + ": " + r);
        assertEquals(List.of(), r.violations(), composition + ", " + r);
        assertTrue(r.readsOfWrites() > r.reads() / 4, "enough reads found written data to mean something: " + r);
    }

    /**
     * A mirror of two files, one behind a fault switch: its writes fail for a while (it leaves the mirror, which
     * remembers what it missed), it heals and is reinstated (resynced under the load), and its reads stall past the
     * request timeout for a while (the mirror's reads go to the other replica, or fail with ETIMEDOUT).
     */
    @Test
    void aMirrorOfFilesWithAReplicaThatFailsIsResyncedAndStallsKeepsEveryReadRight() {
        long seed = seed();
        FaultyBackend flaky = Backends.from(file("a.img")).faults();
        MirrorBackend mirror = Backends.mirror(flaky, file("b.img"));
        // Closed before the device's loops end: it stops its resync, whose copy in flight then ends on its loop.
        toClose.add(() -> mirror.close().block(Duration.ofSeconds(30)));
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 32, Duration.ofMillis(500), UbdMetrics.NONE)) {
            HistoryWorkload w = new HistoryWorkload(dev, SIZE, seed);
            w.fault(1500, () -> flaky.failWrites(Errno.EIO));
            w.fault(3500, () -> {
                flaky.heal();
                mirror.reinstate(0).subscribe(null, e -> {});
            });
            w.fault(6000, () -> flaky.delay(Duration.ofMillis(900)));
            w.fault(6400, flaky::heal);
            check(w.run(OPS, 24, 4, LIMIT), "mirror(faulty file, file), seed " + seed);
            mirror.close().block(Duration.ofSeconds(30));
        }
    }

    /**
     * A stripe of a file and a qemu-nbd export, behind timeout and retry and a read cache, while the NBD server is
     * killed and started again twice: requests wait for the reconnect and go again, none may bring stale data back.
     */
    @Test
    void aStripeOverAFileAndAnNbdServerThatRestartsBehindTimeoutRetryAndCacheKeepsEveryReadRight() throws Exception {
        long seed = seed();
        Path export = NbdServers.exportFile(dir, "nbd.img", SIZE / 2);
        int port = NbdServers.freePort();
        NbdServers.Server[] server = {NbdServers.qemuNbd(dir, export, port, null, "vol", 8)};
        toClose.add(() -> server[0].kill());
        NbdBackend nbd = NbdBackend.connect(
                        "nbd://127.0.0.1:" + port + "/vol",
                        NbdOptions.builder()
                                .reconnectAttempts(200)
                                .backoff(Duration.ofMillis(20), Duration.ofMillis(200))
                                .requestTimeout(Duration.ofSeconds(20))
                                .build())
                .block(Duration.ofSeconds(30));
        toClose.add(() -> nbd.close().block(Duration.ofSeconds(30)));
        FileBackend local = file("stripe.img");
        BlockBackend device = Backends.stripe(
                        64 << 10,
                        local,
                        Backends.from(nbd).timeout(Duration.ofSeconds(5)).retry(3, Duration.ofMillis(50)))
                .cache(1 << 20);
        try (VirtualDevice dev = VirtualDevice.serve(device, 2, 32, Duration.ofSeconds(10), UbdMetrics.NONE)) {
            HistoryWorkload w = new HistoryWorkload(dev, SIZE, seed);
            Runnable restart = () -> {
                server[0].kill();
                NbdServers.sleep(300);
                try {
                    server[0] = NbdServers.qemuNbd(dir, export, port, null, "vol", 8);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            };
            w.fault(2500, restart);
            w.fault(6500, restart);
            check(w.run(OPS, 24, 8, LIMIT), "stripe(file, nbd qemu-nbd restarting).cache, seed " + seed);
        }
    }

    /**
     * A file behind a read cache and a timeout, whose writes and reads stall past the server's request timeout for a
     * while: the given-up requests must not land after later writes, and the cache must not serve what a given-up
     * write replaced.
     */
    @Test
    void aCachedFileWhoseRequestsStallPastTheTimeoutKeepsEveryReadRight() {
        long seed = seed();
        FaultyBackend stalling = Backends.from(file("stall.img")).faults();
        BlockBackend device = stalling.cache(1 << 20);
        try (VirtualDevice dev = VirtualDevice.serve(device, 2, 32, Duration.ofMillis(300), UbdMetrics.NONE)) {
            HistoryWorkload w = new HistoryWorkload(dev, SIZE, seed);
            w.fault(2000, () -> stalling.delay(Duration.ofMillis(450)));
            w.fault(2300, stalling::heal);
            w.fault(7000, () -> stalling.delay(Duration.ofMillis(350)));
            w.fault(7300, stalling::heal);
            check(w.run(OPS, 24, 4, LIMIT), "file.faults.cache with stalls past the timeout, seed " + seed);
        }
    }
}

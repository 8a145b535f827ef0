package dev.reactorubd.targets.compose;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Vm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A mirror on the real ublk driver: fio writes and verifies while one replica starts failing mid-run; the device
 * never reports an error, the replica is reported FAILED, and after a reinstate under a second fio run both replicas
 * hold the same bytes.
 */
@DeviceTest
class MirrorDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static final long SIZE = 64L << 20;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    private static Process fio(String path, String name, int seed) throws IOException {
        return new ProcessBuilder(
                        "fio",
                        "--name=" + name,
                        "--filename=" + path,
                        "--rw=randwrite",
                        "--bs=4k",
                        "--iodepth=16",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--size=" + SIZE,
                        "--randseed=" + seed,
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1")
                .redirectErrorStream(true)
                .start();
    }

    private static String finish(Process fio) throws Exception {
        assertTrue(fio.waitFor(300, TimeUnit.SECONDS), "fio finished");
        String out = new String(fio.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, fio.exitValue(), out);
        assertTrue(out.contains("err= 0"), out);
        return out;
    }

    @Test
    void aReplicaFailingMidRunIsSkippedThenResyncedUnderLoad() throws Exception {
        MemoryBackend a = new MemoryBackend(SIZE);
        MemoryBackend bMem = new MemoryBackend(SIZE);
        FaultyBackend b = Backends.from(bMem).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        List<HealthEvent> events = new CopyOnWriteArrayList<>();
        mirror.health().subscribe(events::add);
        UbdDevice dev = SERVER.get()
                .serve(
                        DeviceSpec.builder()
                                .capacityBytes(SIZE)
                                .queues(2)
                                .depth(64)
                                .build(),
                        mirror)
                .block(WAIT);
        try {
            Process first = fio(dev.blockDevicePath(), "mirror-fail", 1);
            try {
                // Let about a quarter of the writes reach both replicas, then make replica 1 fail its writes.
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                while (b.requests() < 4000 && first.isAlive() && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                b.failWrites(Errno.EIO);
                finish(first);
            } finally {
                first.destroyForcibly();
            }
            assertEquals(ReplicaState.FAILED, mirror.state(1), events.toString());
            assertEquals(ReplicaState.IN_SYNC, mirror.state(0));
            assertTrue(
                    events.stream().anyMatch(e -> e.replica() == 1 && e.to() == ReplicaState.FAILED),
                    events.toString());
            assertTrue(mirror.dirtyRegions(1) > 0, "writes were made without replica 1");
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "the device saw no error");

            b.heal();
            Process second = fio(dev.blockDevicePath(), "mirror-resync", 2);
            try {
                mirror.reinstate(1).block(WAIT);
                finish(second);
            } finally {
                second.destroyForcibly();
            }
            assertEquals(ReplicaState.IN_SYNC, mirror.state(1));
            assertEquals(0, mirror.dirtyRegions(1));
            for (long at = 0; at < SIZE; at += 4L << 20) {
                assertArrayEquals(
                        TestData.direct(a, at, 4 << 20), TestData.direct(bMem, at, 4 << 20), "replicas agree at " + at);
            }
        } finally {
            dev.close().block(WAIT);
            assertFalse(Files.exists(Path.of(dev.blockDevicePath())), dev.blockDevicePath() + " is gone");
            assertFalse(Vm.deviceExists(dev.id()), "device " + dev.id() + " is deleted");
        }
    }
}

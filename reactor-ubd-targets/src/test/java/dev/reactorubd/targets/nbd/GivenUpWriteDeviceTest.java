package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The path issue #16 suspected, on the real driver with zero copy (AUTO_BUF_REG, 6.16+): an NBD WRITE sent from the
 * request's registered pages is answered by the server's request timeout (shorter than the NBD client's own) while the
 * export does not answer; the tag's next request takes the same buffer slot; the connection is lost and comes back.
 * The old WRITE used to be sent again from that slot, carrying the next request's pages to the old request's offset.
 * Now it is given up with its answer and never leaves again.
 *
 * <p>One queue of depth 1, so that both requests use tag 0 and its slot. Bounds (the VM emulates its CPU): a request
 * timeout of 8 s, 60 s for each dd.
 */
@DeviceTest
class GivenUpWriteDeviceTest {
    private static final int SIZE = 4 << 20;
    private static final int LEN = 4096;
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(8);

    @TempDir
    Path dir;

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < end, "timed out waiting until " + what);
            Thread.sleep(20);
        }
    }

    private Process dd(UbdDevice dev, Path from, long offset) throws Exception {
        return new ProcessBuilder(
                        "dd",
                        "if=" + from,
                        "of=" + dev.blockDevicePath(),
                        "bs=" + LEN,
                        "count=1",
                        "seek=" + offset / LEN,
                        "oflag=direct",
                        "conv=notrunc")
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("dd-" + offset + ".log").toFile())
                .start();
    }

    private static int exit(Process p) throws Exception {
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "dd ended");
        return p.exitValue();
    }

    @Test
    void aTimedOutZeroCopyWriteIsNotSentAgainFromItsSlotAfterAReconnect() throws Exception {
        Vm.assumeFeature(UblkFeature.AUTO_BUF_REG);
        byte[] oldData = new byte[LEN];
        byte[] newData = new byte[LEN];
        Arrays.fill(oldData, (byte) 0xAA);
        Arrays.fill(newData, (byte) 0xBB);
        Path oldFile = Files.write(dir.resolve("old"), oldData);
        Path newFile = Files.write(dir.resolve("new"), newData);
        try (FakeNbdServer export = new FakeNbdServer(SIZE);
                UbdServer server =
                        UbdServer.builder().requestTimeout(REQUEST_TIMEOUT).build()) {
            Devices.removeLeftovers(server.control());
            export.flags |= NbdProtocol.TF_CAN_MULTI_CONN;
            NbdBackend nbd = NbdBackend.connect(
                            export.uri(),
                            NbdOptions.builder()
                                    .reconnectAttempts(20)
                                    .backoff(Duration.ofMillis(20), Duration.ofMillis(200))
                                    .connectTimeout(NbdServers.VM_CONNECT_TIMEOUT)
                                    .requestTimeout(Duration.ofSeconds(120))
                                    .build())
                    .block(Devices.WAIT);
            try {
                UbdDevice dev = Devices.serve(
                        server,
                        DeviceSpec.builder()
                                .capacityBytes(SIZE)
                                .queues(1)
                                .depth(1)
                                .logicalBlockSize(LEN)
                                .build(),
                        nbd);
                try {
                    assertTrue(dev.info().has(UblkFeature.AUTO_BUF_REG), "zero copy: " + dev.info());
                    // The kernel's own reads after the start (partition scan) are done: the tag is idle.
                    long[] last = {-1};
                    long[] quietSince = {System.nanoTime()};
                    await(
                            () -> {
                                long now = dev.queue(0).completedCount()
                                        + dev.queue(0).failedCount();
                                if (now != last[0] || dev.queue(0).inFlightCount() != 0) {
                                    last[0] = now;
                                    quietSince[0] = System.nanoTime();
                                }
                                return System.nanoTime() - quietSince[0] > TimeUnit.SECONDS.toNanos(2);
                            },
                            "the device is idle");
                    // The export takes the old write and never answers it: the request timeout answers it.
                    export.mode = FakeNbdServer.Mode.SILENT;
                    int seen = export.writes.get();
                    assertNotEquals(0, exit(dd(dev, oldFile, 0)), "the old write failed: timed out");
                    assertEquals(seen + 1, export.writes.get(), "the old write reached the export once");
                    // The tag's next request, in the same slot, while the export still does not answer.
                    Process next = dd(dev, newFile, 1 << 20);
                    await(() -> export.writes.get() >= seen + 2, "the next write reached the export");
                    // The export answers again, and the connection is lost and comes back under the next write.
                    export.mode = FakeNbdServer.Mode.SERVE;
                    export.dropAll();
                    assertEquals(0, exit(next), "the next write went through after the reconnect");
                    assertArrayEquals(newData, export.bytes(1 << 20, LEN));
                    assertTrue(
                            dev.queue(0).zeroCopyCount() >= 2,
                            "both writes were served in place: " + dev.queue(0).zeroCopyCount());
                    byte[] atOld = export.bytes(0, LEN);
                    assertNotEquals(
                            Arrays.toString(newData),
                            Arrays.toString(atOld),
                            "the next write's pages reached the old write's offset");
                    assertArrayEquals(new byte[LEN], atOld, "the old write, given up, never reached the export");
                } finally {
                    Devices.closeAndCheckGone(dev);
                }
            } finally {
                nbd.close().block(Devices.WAIT);
            }
        }
    }
}

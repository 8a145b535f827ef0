package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdTesting.WAIT;
import static dev.reactorubd.targets.nbd.NbdTesting.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** The NBD backend against real servers on loopback (nbd-server, qemu-nbd), through the test kit's device. */
class NbdRealServersTest extends NbdHostTest {
    private static final int SIZE = 16 << 20;

    @TempDir
    Path dir;

    @Test
    void nbdServerKeepsMixedWritesInItsFileAndServesFlushFuaTrimAndZeroes() throws Exception {
        Path file = NbdServers.exportFile(dir, "nbd-server.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.nbdServer(dir, file, port, "disk"));
        NbdBackend nbd = connect("nbd://127.0.0.1:" + port + "/disk", NbdOptions.defaults());
        assertEquals(SIZE, nbd.size());
        assertFalse(nbd.readOnly());
        assertTrue(
                nbd.capabilities().containsAll(List.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD)),
                nbd.capabilities() + " from flags " + NbdProtocol.flagNames(nbd.transmissionFlags()));
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            NbdTesting.mixedWritesReadBack(dev, model, 96, 1);
            NbdTesting.wholeDeviceIs(dev, model);
            byte[] fua = new byte[8192];
            Arrays.fill(fua, (byte) 0x5a);
            StepVerifier.create(dev.write(0, 4096, Unpooled.wrappedBuffer(fua), true))
                    .verifyComplete();
            System.arraycopy(fua, 0, model, 4096, fua.length);
            StepVerifier.create(dev.flush(1)).expectComplete().verify(WAIT);
            // TRIM may or may not deallocate; it must be accepted.
            StepVerifier.create(dev.discard(0, SIZE - (1 << 20), 1 << 20))
                    .expectComplete()
                    .verify(WAIT);
            Arrays.fill(model, SIZE - (1 << 20), SIZE, (byte) 0);
            if (nbd.capabilities().contains(Capability.WRITE_ZEROES)) {
                StepVerifier.create(dev.writeZeroes(1, 0, 4096))
                        .expectComplete()
                        .verify(WAIT);
                Arrays.fill(model, 0, 4096, (byte) 0);
                assertArrayEquals(new byte[4096], read(dev, 0, 0, 4096));
            }
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
            NbdTesting.fileIs(file, patchTrimmed(model, file));
        }
    }

    /** A trimmed range may keep its old bytes on the server: take them from the file for the comparison. */
    private static byte[] patchTrimmed(byte[] model, Path file) throws IOException {
        byte[] copy = model.clone();
        byte[] onDisk = Files.readAllBytes(file);
        System.arraycopy(onDisk, SIZE - (1 << 20), copy, SIZE - (1 << 20), 1 << 20);
        return copy;
    }

    @Test
    void qemuNbdWithMultiConnGivesEachQueueItsOwnConnectionAnsweredOnItsLoop() throws Exception {
        Path file = NbdServers.exportFile(dir, "qemu.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
        NbdBackend nbd = connect("nbd://127.0.0.1:" + port + "/vol", NbdOptions.defaults());
        assertTrue(
                nbd.multiConn(),
                "qemu-nbd --shared=8 advertises CAN_MULTI_CONN: " + NbdProtocol.flagNames(nbd.transmissionFlags()));
        assertEquals(1, nbd.connectionCount());
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            assertEquals(3, nbd.connectionCount(), "the backend's own connection and one per queue");
            NbdTesting.mixedWritesReadBack(dev, model, 96, 2);
            NbdTesting.wholeDeviceIs(dev, model);
            StepVerifier.create(dev.flush(0).then(dev.flush(1)))
                    .expectComplete()
                    .verify(WAIT);
            NbdTesting.fileIs(file, model);
            assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0);
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount());
        }
        // The queues' connections close with their queues.
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (nbd.connectionCount() > 1 && System.nanoTime() < end) {
            Thread.sleep(20);
        }
        assertEquals(1, nbd.connectionCount(), "only the backend's own connection is left");
    }

    @Test
    void repliesOfABoundQueueArriveOnThatQueuesLoop() throws Exception {
        Path file = NbdServers.exportFile(dir, "loops.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
        NbdBackend nbd = connect("nbd://127.0.0.1:" + port + "/vol", NbdOptions.defaults());
        try (VirtualDevice dev = VirtualDevice.create(2, 8)) {
            assertTrue(dev.onIoUring(), "this host has io_uring, so the test kit's loops are io_uring loops");
            for (UbdQueue q : dev.queues()) {
                BlockBackend bound = nbd.bind(q).block(WAIT);
                assertNotEquals(nbd, bound, "queue " + q.id() + " got a backend of its own");
                String loopThread =
                        q.loop().submit(() -> Thread.currentThread().getName()).get(10, TimeUnit.SECONDS);
                ByteBuf data = Unpooled.directBuffer(4096).writeZero(4096).setByte(7, q.id() + 1);
                String writeThread = Mono.defer(() -> bound.write(q.id() * 4096L, data, false))
                        .subscribeOn(q.scheduler())
                        .then(Mono.fromCallable(() -> Thread.currentThread().getName()))
                        .block(WAIT);
                data.release();
                String readThread = Mono.defer(() -> bound.read(q.id() * 4096L, 4096, PooledByteBufAllocator.DEFAULT))
                        .subscribeOn(q.scheduler())
                        .map(b -> {
                            try {
                                assertEquals(q.id() + 1, b.getByte(7));
                                return Thread.currentThread().getName();
                            } finally {
                                b.release();
                            }
                        })
                        .block(WAIT);
                assertEquals(loopThread, writeThread, "the write's reply came on the queue's loop");
                assertEquals(loopThread, readThread, "the read's reply came on the queue's loop");
            }
            assertEquals(3, nbd.connectionCount());
        }
    }

    @Test
    void qemuNbdOverAUnixSocket() throws Exception {
        Path file = NbdServers.exportFile(dir, "unix.img", SIZE);
        Path socket = dir.resolve("nbd.sock");
        closing(NbdServers.qemuNbd(dir, file, 0, socket, "vol", 8));
        NbdBackend nbd = connect("nbd+unix:///vol?socket=" + socket, NbdOptions.defaults());
        assertEquals(SIZE, nbd.size());
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            NbdTesting.mixedWritesReadBack(dev, model, 64, 3);
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
            NbdTesting.fileIs(file, model);
            if (nbd.capabilities().contains(Capability.WRITE_ZEROES)) {
                StepVerifier.create(dev.writeZeroes(0, 0, 65536))
                        .expectComplete()
                        .verify(WAIT);
                assertArrayEquals(new byte[65536], read(dev, 1, 0, 65536));
            }
        }
    }

    @Test
    void withoutMultiConnQueuesShareOneConnection() throws Exception {
        Path file = NbdServers.exportFile(dir, "shared.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/vol",
                NbdOptions.builder().multiConn(false).build());
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            assertEquals(1, nbd.connectionCount());
            NbdTesting.mixedWritesReadBack(dev, model, 64, 4);
            NbdTesting.wholeDeviceIs(dev, model);
        }
    }

    @Test
    void anUnknownExportIsAClearTypedError() throws Exception {
        Path file = NbdServers.exportFile(dir, "known.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.nbdServer(dir, file, port, "known"));
        StepVerifier.create(NbdBackend.connect("nbd://127.0.0.1:" + port + "/nosuch", NbdOptions.defaults()))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException, e.toString());
                    assertTrue(((NbdException) e).isUnknownExport(), e.getMessage());
                    assertTrue(
                            e.getMessage().contains("'nosuch'")
                                    && e.getMessage().contains("export name"),
                            e.getMessage());
                })
                .verify(WAIT);
        // And with qemu-nbd.
        int qport = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, qport, null, "vol", 2));
        StepVerifier.create(NbdBackend.connect("nbd://127.0.0.1:" + qport + "/other", NbdOptions.defaults()))
                .expectErrorSatisfies(e -> assertTrue(e instanceof NbdException n && n.isUnknownExport(), e.toString()))
                .verify(WAIT);
    }

    @Test
    void nothingListeningIsAClearErrorWithinTheConnectTimeout() throws Exception {
        int port = NbdServers.freePort();
        long t0 = System.nanoTime();
        StepVerifier.create(NbdBackend.connect(
                        "nbd://127.0.0.1:" + port + "/x",
                        NbdOptions.builder()
                                .connectTimeout(Duration.ofSeconds(3))
                                .build()))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException, e.toString());
                    assertTrue(e.getMessage().contains("cannot connect to nbd://127.0.0.1:" + port), e.getMessage());
                })
                .verify(WAIT);
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
    }
}

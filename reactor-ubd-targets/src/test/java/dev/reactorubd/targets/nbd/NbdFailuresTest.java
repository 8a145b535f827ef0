package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdTesting.WAIT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/**
 * What the NBD backend does when things go wrong: servers killed, stopped and restarted, silent servers, server errors,
 * an export that changes size, and the protocol's corners (no NBD_OPT_GO, block size limits, read-only exports).
 */
class NbdFailuresTest extends NbdHostTest {
    private static final int SIZE = 8 << 20;

    @TempDir
    Path dir;

    /** The errno a request failed with, or 0 when it succeeded. */
    private static Mono<Integer> outcome(Mono<?> request) {
        return request.map(v -> {
                    if (v instanceof ByteBuf b) {
                        b.release();
                    }
                    return 0;
                })
                .defaultIfEmpty(0)
                .onErrorResume(e -> Mono.just(e instanceof UbdIoException u ? u.errno() : -1));
    }

    private static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    // ------------------------------------------------------------------------------------------------ real servers

    @Test
    void serverKilledMidIoWithRetryOffFailsPendingRequestsWithEioAtOnceThenServiceResumes() throws Exception {
        Path file = NbdServers.exportFile(dir, "killed.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server server = closing(NbdServers.nbdServer(dir, file, port, "disk"));
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/disk",
                NbdOptions.builder()
                        .noRetry()
                        .requestTimeout(Duration.ofSeconds(20))
                        .backoff(Duration.ofMillis(100), Duration.ofSeconds(1))
                        .build());
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            dev.write(0, 0, Unpooled.wrappedBuffer(pattern(65536, 1))).block(WAIT);
            // Stopped, the server takes requests into its socket and answers none: they are in flight for sure.
            server.signal("STOP");
            CompletableFuture<List<Integer>> pending = Flux.range(0, 24)
                    .flatMap(i -> outcome(
                            i % 3 == 0
                                    ? dev.write(i % 2, i * 8192L, Unpooled.wrappedBuffer(pattern(8192, i)))
                                    : dev.read(i % 2, i * 8192L, 8192)))
                    .collectList()
                    .toFuture();
            Thread.sleep(300);
            assertFalse(pending.isDone(), "the requests wait for the stopped server");
            server.signal("KILL");
            long t0 = System.nanoTime();
            List<Integer> errnos = pending.get(5, TimeUnit.SECONDS);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertEquals(24, errnos.size());
            assertTrue(
                    errnos.stream().allMatch(e -> e == Errno.EIO), "every pending request failed with EIO: " + errnos);
            assertTrue(ms < 2000, "they failed at once, not after a timeout: " + ms + " ms");
            // While the server is down, requests fail fast.
            long t1 = System.nanoTime();
            StepVerifier.create(outcome(dev.read(0, 0, 4096)))
                    .expectNext(Errno.EIO)
                    .verifyComplete();
            assertTrue(System.nanoTime() - t1 < TimeUnit.SECONDS.toNanos(2), "failed fast");
            // Back on the same port and file: service resumes (a failed request starts a background reconnect).
            closing(NbdServers.nbdServer(dir, file, port, "disk"));
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            byte[] back = null;
            while (back == null && System.nanoTime() < end) {
                try {
                    back = NbdTesting.read(dev, 1, 0, 65536);
                } catch (UbdIoException e) {
                    assertEquals(Errno.EIO, e.errno(), e.getMessage());
                    Thread.sleep(100);
                }
            }
            assertArrayEquals(pattern(65536, 1), back, "the data written before the kill");
        }
    }

    @Test
    void serverRestartedWithRetryOnServesTheRequestsThatWaited() throws Exception {
        Path file = NbdServers.exportFile(dir, "restart.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server server = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
        toClose.add(() -> server.kill());
        NbdOptions retry = NbdOptions.builder()
                .reconnectAttempts(100)
                .backoff(Duration.ofMillis(50), Duration.ofMillis(300))
                .requestTimeout(Duration.ofSeconds(30))
                .build();
        NbdBackend nbd = connect("nbd://127.0.0.1:" + port + "/vol", retry);
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            assertEquals(3, nbd.connectionCount());
            byte[] before = pattern(1 << 20, 7);
            dev.write(0, 0, Unpooled.wrappedBuffer(before)).block(WAIT);
            dev.flush(0).block(WAIT);
            server.kill();
            // Issued while the server is down: they wait for it.
            List<Mono<Integer>> requests = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                requests.add(outcome(
                        dev.write(i % 2, (2 << 20) + i * 65536L, Unpooled.wrappedBuffer(pattern(65536, 100 + i)))));
            }
            CompletableFuture<List<Integer>> waited =
                    Flux.merge(requests).collectList().toFuture();
            CompletableFuture<byte[]> readWaited = dev.read(1, 0, 1 << 20)
                    .map(b -> {
                        try {
                            return ByteBufUtil.getBytes(b);
                        } finally {
                            b.release();
                        }
                    })
                    .toFuture();
            Thread.sleep(1500);
            assertFalse(waited.isDone() || readWaited.isDone(), "requests wait while the server is down");
            NbdServers.Server again = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
            toClose.add(again::kill);
            List<Integer> errnos = waited.get(20, TimeUnit.SECONDS);
            assertTrue(errnos.stream().allMatch(e -> e == 0), "every write completed after the restart: " + errnos);
            assertArrayEquals(before, readWaited.get(20, TimeUnit.SECONDS), "the read that waited");
            for (int i = 0; i < 16; i++) {
                assertArrayEquals(pattern(65536, 100 + i), NbdTesting.read(dev, i % 2, (2 << 20) + i * 65536L, 65536));
            }
            StepVerifier.create(dev.flush(0).then(dev.flush(1)))
                    .expectComplete()
                    .verify(WAIT);
            byte[] onDisk = Files.readAllBytes(file);
            assertArrayEquals(
                    pattern(65536, 115),
                    Arrays.copyOfRange(onDisk, (2 << 20) + 15 * 65536, (2 << 20) + 16 * 65536),
                    "the written data is in the server's file");
            // The backend's own connection reconnects on its own schedule, not in the path of these requests.
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (nbd.connectionCount() < 3 && System.nanoTime() < end) {
                Thread.sleep(20);
            }
            assertEquals(3, nbd.connectionCount(), "every connection is back");
        }
    }

    @Test
    void whenReconnectsRunOutRequestsFailWithEioAndTheNextRequestTriesAgain() throws Exception {
        Path file = NbdServers.exportFile(dir, "gone.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server server = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
        toClose.add(server::kill);
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/vol",
                NbdOptions.builder()
                        .reconnectAttempts(3)
                        .backoff(Duration.ofMillis(50), Duration.ofMillis(100))
                        .build());
        nbd.write(0, Unpooled.wrappedBuffer(pattern(4096, 3)), false).block(WAIT);
        server.kill();
        long t0 = System.nanoTime();
        StepVerifier.create(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT))
                .expectErrorSatisfies(e -> {
                    assertEquals(Errno.EIO, ((UbdIoException) e).errno());
                    assertTrue(
                            e.getMessage()
                                    .contains("lost connection to nbd://127.0.0.1:" + port + "/vol; 3 reconnects"
                                            + " failed"),
                            e.getMessage());
                })
                .verify(Duration.ofSeconds(10));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "3 attempts, 50 + 100 ms apart");
        NbdServers.Server again = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
        toClose.add(again::kill);
        StepVerifier.create(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT).map(b -> {
                    try {
                        return ByteBufUtil.getBytes(b);
                    } finally {
                        b.release();
                    }
                }))
                .assertNext(b -> assertArrayEquals(pattern(4096, 3), b))
                .verifyComplete();
        assertEquals(1, nbd.connectionCount());
    }

    // ------------------------------------------------------------------------------------------------ a fake server

    @Test
    void aSilentServerFailsRequestsWithEtimedoutWithinTheRequestTimeout() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.mode = FakeNbdServer.Mode.SILENT;
        for (boolean retry : List.of(false, true)) {
            NbdOptions.Builder options =
                    retry ? NbdOptions.builder() : NbdOptions.builder().noRetry();
            NbdBackend nbd = connect(
                    fake.uri(), options.requestTimeout(Duration.ofSeconds(1)).build());
            try (VirtualDevice dev = VirtualDevice.serve(nbd, 1, 8)) {
                long t0 = System.nanoTime();
                StepVerifier.create(Flux.merge(
                                        outcome(dev.read(0, 0, 4096)),
                                        outcome(dev.write(0, 4096, Unpooled.wrappedBuffer(new byte[4096]))))
                                .collectList())
                        .assertNext(errnos -> {
                            // The first to time out closes the connection: with retry off the other one fails with
                            // EIO then, unless its own time is up first; with retry on it is resent and times out.
                            assertEquals(Errno.ETIMEDOUT, errnos.get(0), errnos.toString());
                            assertTrue(
                                    errnos.get(1) == Errno.ETIMEDOUT || (!retry && errnos.get(1) == Errno.EIO),
                                    errnos.toString());
                        })
                        .verifyComplete();
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
                assertTrue(ms >= 900 && ms < 3000, "failed after about the request timeout: " + ms + " ms");
            }
        }
        assertTrue(fake.requests.get() >= 4, "the requests reached the server");
    }

    @Test
    void aStalledReconnectIsBoundedByTheRequestTimeoutToo() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        NbdBackend nbd = connect(
                fake.uri(),
                NbdOptions.builder()
                        .reconnectAttempts(1000)
                        .backoff(Duration.ofMillis(50), Duration.ofMillis(50))
                        .requestTimeout(Duration.ofSeconds(1))
                        .build());
        // The server stays up, so that nothing else can take its port (once, with the server closed, a reconnect
        // reached a listener there and the read was answered), and takes every reconnect without a word.
        fake.greets = false;
        fake.dropAll();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (nbd.connectionCount() > 0 && System.nanoTime() < end) {
            Thread.sleep(10);
        }
        assertEquals(0, nbd.connectionCount(), "the backend saw the server go");
        long t0 = System.nanoTime();
        StepVerifier.create(outcome(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT)))
                .expectNext(Errno.ETIMEDOUT)
                .verifyComplete();
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(3));
    }

    @Test
    void withoutOptGoTheExportIsChosenWithExportName() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.supportGo = false;
        NbdBackend nbd = connect(fake.uri(), NbdOptions.defaults());
        assertEquals(1 << 20, nbd.size());
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 1, 8)) {
            dev.write(0, 8192, Unpooled.wrappedBuffer(pattern(8192, 5))).block(WAIT);
            assertArrayEquals(pattern(8192, 5), NbdTesting.read(dev, 0, 8192, 8192));
            assertArrayEquals(pattern(8192, 5), fake.bytes(8192, 8192));
        }
        StepVerifier.create(NbdBackend.connect("nbd://127.0.0.1:" + fake.port() + "/other", NbdOptions.defaults()))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException n && n.isUnknownExport(), e.toString());
                    assertTrue(e.getMessage().contains("'other'"), e.getMessage());
                })
                .verify(WAIT);
    }

    @Test
    void serverErrorsBecomeTheirErrnos() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        NbdBackend nbd = connect(fake.uri(), NbdOptions.defaults());
        fake.mode = FakeNbdServer.Mode.FAIL;
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 1, 8)) {
            int[][] cases = {
                {28, Errno.ENOSPC},
                {1, Errno.EPERM},
                {12, Errno.ENOMEM},
                {22, Errno.EINVAL},
                {75, 75},
                {95, Errno.EOPNOTSUPP},
                {108, 108},
                {5, Errno.EIO},
                {99, Errno.EIO}
            };
            for (int[] c : cases) {
                fake.error = c[0];
                StepVerifier.create(outcome(dev.write(0, 0, Unpooled.wrappedBuffer(new byte[4096]))))
                        .expectNext(c[1])
                        .verifyComplete();
                StepVerifier.create(outcome(dev.read(0, 0, 4096)))
                        .expectNext(c[1])
                        .verifyComplete();
            }
            fake.mode = FakeNbdServer.Mode.SERVE;
            StepVerifier.create(outcome(dev.read(0, 0, 4096))).expectNext(0).verifyComplete();
        }
        assertEquals(1, fake.connections.get(), "an error reply keeps the connection");
    }

    @Test
    void anExportThatChangedSizeWhileReconnectingFailsWithEio() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(2 << 20));
        fake.size = 1 << 20;
        NbdBackend nbd = connect(
                fake.uri(),
                NbdOptions.builder()
                        .backoff(Duration.ofMillis(20), Duration.ofMillis(50))
                        .build());
        assertEquals(1 << 20, nbd.size());
        fake.size = 2 << 20;
        fake.dropAll();
        StepVerifier.create(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT))
                .expectErrorSatisfies(e -> {
                    assertEquals(Errno.EIO, ((UbdIoException) e).errno());
                    assertTrue(e.getMessage().contains("changed size from 1048576 to 2097152"), e.getMessage());
                })
                .verify(WAIT);
        fake.size = 1 << 20;
        StepVerifier.create(outcome(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT)))
                .expectNext(0)
                .verifyComplete();
    }

    @Test
    void requestsBeyondTheMaximumBlockSizeAreSplitAndTheMinimumIsReported() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(4 << 20));
        fake.maxBlock = 65536;
        NbdBackend nbd = connect(fake.uri(), NbdOptions.defaults());
        assertEquals(65536, nbd.maximumPayload());
        assertEquals(512, nbd.minimumBlockSize());
        assertEquals(4096, nbd.preferredBlockSize());
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 8)) {
            byte[] data = pattern(300 * 1024, 9);
            int before = fake.requests.get();
            dev.write(0, 4096, Unpooled.wrappedBuffer(data)).block(WAIT);
            assertEquals(before + 5, fake.requests.get(), "300 KiB went as 5 requests of at most 64 KiB");
            assertArrayEquals(data, fake.bytes(4096, data.length));
            assertArrayEquals(data, NbdTesting.read(dev, 1, 4096, data.length));
            assertEquals(before + 10, fake.requests.get());
        }
    }

    @Test
    void repliesCutIntoSmallPiecesAreReassembled() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        NbdBackend nbd = connect(fake.uri(), NbdOptions.defaults());
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 8)) {
            byte[] data = pattern(6000 + 512 * 7, 11);
            dev.write(0, 512, Unpooled.wrappedBuffer(data)).block(WAIT);
            fake.dribble = 7;
            // Headers split across reads, payloads gathered from many: the same bytes come back, several in flight.
            StepVerifier.create(Flux.range(0, 4)
                            .flatMap(i -> dev.read(i % 2, 512, data.length).map(b -> {
                                try {
                                    return Arrays.equals(data, ByteBufUtil.getBytes(b));
                                } finally {
                                    b.release();
                                }
                            }))
                            .all(ok -> ok))
                    .expectNext(true)
                    .verifyComplete();
            fake.dribble = 5;
            StepVerifier.create(outcome(dev.write(1, 0, Unpooled.wrappedBuffer(new byte[512]))))
                    .expectNext(0)
                    .verifyComplete();
        }
    }

    @Test
    void aReadOnlyExportRefusesWritesWithErofs() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.flags = NbdProtocol.TF_HAS_FLAGS
                | NbdProtocol.TF_READ_ONLY
                | NbdProtocol.TF_SEND_TRIM
                | NbdProtocol.TF_SEND_WRITE_ZEROES
                | NbdProtocol.TF_SEND_FLUSH;
        NbdBackend nbd = connect(fake.uri(), NbdOptions.defaults());
        assertTrue(nbd.readOnly());
        assertFalse(nbd.capabilities().contains(Capability.DISCARD));
        assertFalse(nbd.capabilities().contains(Capability.WRITE_ZEROES));
        assertTrue(nbd.capabilities().contains(Capability.FLUSH));
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 1, 8)) {
            StepVerifier.create(outcome(dev.write(0, 0, Unpooled.wrappedBuffer(new byte[4096]))))
                    .expectNext(Errno.EROFS)
                    .verifyComplete();
            StepVerifier.create(outcome(dev.read(0, 0, 4096))).expectNext(0).verifyComplete();
        }
        StepVerifier.create(outcome(nbd.discard(0, 4096)))
                .expectNext(Errno.EROFS)
                .verifyComplete();
    }

    @Test
    void closeFailsRequestsInFlightWithEioAndIsIdempotent() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        NbdBackend nbd = NbdBackend.connect(fake.uri(), NbdOptions.defaults()).block(WAIT);
        fake.mode = FakeNbdServer.Mode.SILENT;
        CompletableFuture<Integer> pending =
                outcome(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT)).toFuture();
        Thread.sleep(200);
        assertFalse(pending.isDone());
        assertEquals(1, nbd.connectionCount());
        StepVerifier.create(nbd.close()).expectComplete().verify(Duration.ofSeconds(10));
        assertEquals(Errno.EIO, pending.get(1, TimeUnit.SECONDS));
        StepVerifier.create(nbd.close()).expectComplete().verify(Duration.ofSeconds(1));
        assertEquals(0, nbd.connectionCount());
        StepVerifier.create(outcome(nbd.read(0, 4096, PooledByteBufAllocator.DEFAULT)))
                .expectNext(Errno.EIO)
                .verifyComplete();
    }
}

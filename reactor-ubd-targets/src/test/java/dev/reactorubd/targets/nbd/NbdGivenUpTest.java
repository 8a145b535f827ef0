package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdTesting.WAIT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;
import reactor.test.StepVerifier;

/**
 * Requests given up by their caller (the server's request timeout cancels the backend's Mono) never reach the export
 * again, and writes the server acknowledged are not silently lost across a reconnect: the next FLUSH says so.
 */
class NbdGivenUpTest extends NbdHostTest {
    private static final int SIZE = 1 << 20;
    private static final int LEN = 4096;

    @TempDir
    Path dir;

    private static byte[] filled(int value) {
        byte[] b = new byte[LEN];
        Arrays.fill(b, (byte) value);
        return b;
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < end, "timed out waiting until " + what);
            Thread.sleep(10);
        }
    }

    /**
     * A WRITE on the wire whose caller gives it up (answered by the timeout, the device writes the range again) used to
     * stay in flight, and a reconnect sent it again after the newer write had landed: the range went back to the old
     * data. A server that runs requests out of order is modelled by the fake server ignoring the first write and
     * answering the second.
     */
    @Test
    void aWriteGivenUpOnTheWireIsNotSentAgainAfterALaterWriteOfTheSameRange() throws Exception {
        FakeNbdServer server = closing(new FakeNbdServer(SIZE));
        NbdBackend nbd = connect(
                server.uri(),
                NbdOptions.builder()
                        .reconnectAttempts(5)
                        .backoff(Duration.ofMillis(10), Duration.ofMillis(100))
                        .requestTimeout(Duration.ofSeconds(60))
                        .build());
        server.mode = FakeNbdServer.Mode.SILENT;
        int before = server.requests.get();
        Disposable old =
                nbd.write(0, Unpooled.wrappedBuffer(filled(0xAA)), false).subscribe();
        await(() -> server.requests.get() == before + 1, "the old write reached the server");
        old.dispose(); // what the request timeout does once it answered the request
        server.mode = FakeNbdServer.Mode.SERVE;
        StepVerifier.create(nbd.write(0, Unpooled.wrappedBuffer(filled(0xBB)), false))
                .expectComplete()
                .verify(WAIT);
        assertArrayEquals(filled(0xBB), server.bytes(0, LEN), "the newer write landed");
        // The connection is lost: what was still in flight on it goes again on the next one, but not the old write.
        int connections = server.connections.get();
        server.dropAll();
        await(() -> server.connections.get() > connections && nbd.connectionCount() == 1, "it reconnected");
        // A request on the new connection: the server has handled whatever was re-sent before it.
        ByteBuf b = nbd.read(0, LEN, PooledByteBufAllocator.DEFAULT).block(WAIT);
        b.release();
        assertArrayEquals(filled(0xBB), server.bytes(0, LEN), "the given-up write did not come back over it");
    }

    /** A request given up while it waits for a connection is dropped, never sent. */
    @Test
    void aRequestGivenUpWhileWaitingForAConnectionIsNeverSent() throws Exception {
        FakeNbdServer server = closing(new FakeNbdServer(SIZE));
        NbdBackend nbd = connect(
                server.uri(),
                NbdOptions.builder()
                        .reconnectAttempts(100)
                        .backoff(Duration.ofMillis(300), Duration.ofMillis(300))
                        .requestTimeout(Duration.ofSeconds(60))
                        .build());
        String name = server.exportName;
        server.supportGo = false;
        server.exportName = "elsewhere"; // reconnects fail their handshake until the name is back
        server.dropAll();
        Disposable waiting =
                nbd.write(0, Unpooled.wrappedBuffer(filled(0xCC)), false).subscribe();
        Thread.sleep(200);
        waiting.dispose();
        int before = server.requests.get();
        server.supportGo = true;
        server.exportName = name;
        await(() -> nbd.connectionCount() == 1, "it reconnected");
        ByteBuf b = nbd.read(0, LEN, PooledByteBufAllocator.DEFAULT).block(WAIT);
        b.release();
        assertEquals(before + 1, server.requests.get(), "only the read reached the server");
        assertArrayEquals(new byte[LEN], server.bytes(0, LEN));
    }

    /**
     * Writes a real server (qemu-nbd) acknowledged and that no FLUSH covered may be gone once it restarted: after the
     * reconnect the next FLUSH fails with EIO, once; with no such write (flushed before the restart) it succeeds.
     */
    @Test
    void afterAReconnectTheNextFlushFailsWhenAcknowledgedWritesWereNotFlushed() throws Exception {
        NbdServers.require(NbdServers.QEMU_NBD);
        Path file = NbdServers.exportFile(dir, "flush.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server server = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
        toClose.add(() -> server.kill());
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/vol",
                NbdOptions.builder()
                        .reconnectAttempts(100)
                        .backoff(Duration.ofMillis(50), Duration.ofMillis(300))
                        .requestTimeout(Duration.ofSeconds(30))
                        .build());
        // Written and flushed: a restart loses nothing the server acknowledged, and the next FLUSH goes through.
        nbd.write(0, Unpooled.wrappedBuffer(filled(1)), false).block(WAIT);
        nbd.flush().block(WAIT);
        NbdServers.Server second = restart(server, dir, file, port);
        StepVerifier.create(nbd.flush()).expectComplete().verify(WAIT);
        // Written, acknowledged, not flushed, then the server restarts: the next FLUSH fails, the one after it is fine.
        nbd.write(LEN, Unpooled.wrappedBuffer(filled(2)), false).block(WAIT);
        restart(second, dir, file, port);
        StepVerifier.create(nbd.flush())
                .expectErrorSatisfies(e -> {
                    assertEquals(Errno.EIO, ((UbdIoException) e).errno(), e.getMessage());
                    assertTrue(e.getMessage().contains("not yet flushed"), e.getMessage());
                })
                .verify(WAIT);
        StepVerifier.create(nbd.flush()).expectComplete().verify(WAIT);
        // FUA writes are durable once acknowledged: they leave nothing for a FLUSH to vouch for.
        nbd.write(2 * LEN, Unpooled.wrappedBuffer(filled(3)), true).block(WAIT);
        nbd.flush().block(WAIT);
    }

    /** Kills {@code server}, waits until the backend noticed, and starts a new one on the same file and port. */
    private NbdServers.Server restart(NbdServers.Server server, Path dir, Path file, int port) throws Exception {
        server.kill();
        NbdServers.Server again = NbdServers.qemuNbd(dir, file, port, null, "vol", 8);
        toClose.add(again::kill);
        return again;
    }
}

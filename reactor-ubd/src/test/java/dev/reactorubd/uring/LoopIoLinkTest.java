package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.reactorubd.Errno;
import io.netty.channel.IoEventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringIoHandlerConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link LoopIo#submitLinked} on real Netty io_uring rings of this machine's kernel: the linked SQE runs only after an
 * operation that moved every byte, is cancelled after one that fell short, a chain nobody followed is ended, and a
 * pair is never split by a full queue.
 */
class LoopIoLinkTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    /** A small queue, so that filling it takes few SQEs. */
    private static final int RING = 16;

    private MultiThreadIoEventLoopGroup loops;
    private LoopIo io;
    private Arena arena;
    private int fd = -1;

    @TempDir
    Path dir;

    @BeforeEach
    void setUp() throws Exception {
        assumeTrue(IoUring.isAvailable(), "io_uring is not available here: " + IoUring.unavailabilityCause());
        assertNull(NettyRing.unavailable(), "this build's Netty is a tested one");
        loops = new MultiThreadIoEventLoopGroup(
                1, IoUringIoHandler.newFactory(new IoUringIoHandlerConfig().setRingSize(RING)));
        io = LoopIo.register(loops.next()).block(WAIT);
        Path file = dir.resolve("data");
        Files.write(file, new byte[8192]);
        fd = Libc.open(file.toString(), 0);
        assertTrue(fd >= 0);
        arena = Arena.ofShared();
    }

    @AfterEach
    void tearDown() {
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        if (fd >= 0) {
            Libc.close(fd);
        }
        if (arena != null) {
            arena.close();
        }
    }

    private IoEventLoop loop() {
        return io.loop();
    }

    /** Results, in the order they arrived. */
    private final List<String> results = new CopyOnWriteArrayList<>();

    private LoopIo.Completion record(String name, CompletableFuture<Integer> done) {
        return res -> {
            results.add(name + "=" + res);
            done.complete(res);
        };
    }

    /** Reads {@code len} bytes at {@code off} and links a no-op behind it; returns both results. */
    private int[] readThenLinkedNop(long off, int len) throws Exception {
        MemorySegment buf = arena.allocate(len, 4096);
        CompletableFuture<Integer> read = new CompletableFuture<>();
        CompletableFuture<Integer> nop = new CompletableFuture<>();
        boolean linked = loop().submit(() -> io.submitLinked(
                        Sqe.read(fd, off, buf.address(), len),
                        record("read", read),
                        () -> io.submit(Sqe.nop(), record("nop", nop))))
                .get(10, TimeUnit.SECONDS);
        assertTrue(linked);
        return new int[] {read.get(10, TimeUnit.SECONDS), nop.get(10, TimeUnit.SECONDS)};
    }

    @Test
    void theLinkedOperationRunsAfterOneThatMovedEveryByte() throws Exception {
        int[] res = readThenLinkedNop(0, 4096);
        assertEquals(4096, res[0]);
        assertEquals(0, res[1]);
        assertEquals(List.of("read=4096", "nop=0"), results);
    }

    @Test
    void theLinkedOperationIsCancelledAfterOneThatFellShort() throws Exception {
        int[] res = readThenLinkedNop(6144, 4096); // 2048 bytes before the end of the file
        assertEquals(2048, res[0]);
        assertEquals(-Errno.ECANCELED, res[1]);
    }

    @Test
    void aChainNobodyFollowedIsEndedSoTheNextOperationRunsAlone() throws Exception {
        CompletableFuture<Integer> failed = new CompletableFuture<>();
        CompletableFuture<Integer> later = new CompletableFuture<>();
        loop().submit(() -> {
                    // The head fails (no such fd); its follower enqueues nothing. An operation submitted next, in the
                    // same
                    // turn, must not be taken into the chain (it would be cancelled).
                    assertTrue(io.submitLinked(Sqe.read(1 << 20, 0, 0, 0), record("bad", failed), () -> {}));
                    io.submit(Sqe.nop(), record("later", later));
                })
                .get(10, TimeUnit.SECONDS);
        assertEquals(-Errno.EBADF, failed.get(10, TimeUnit.SECONDS));
        assertEquals(0, later.get(10, TimeUnit.SECONDS));
    }

    @Test
    void aQueueWithoutRoomForBothIsNotLinked() throws Exception {
        CountDownLatch filled = new CountDownLatch(RING - 1);
        boolean[] outcome = loop().submit(() -> {
                    // Fill the queue within one task, so that Netty has submitted none of it yet.
                    for (int i = 0; i < RING - 1; i++) {
                        io.submit(Sqe.nop(), res -> filled.countDown());
                    }
                    boolean full = io.submitLinked(Sqe.nop(), res -> {}, () -> {
                        throw new AssertionError("not linked: nothing may follow");
                    });
                    return new boolean[] {full};
                })
                .get(10, TimeUnit.SECONDS);
        assertFalse(outcome[0], "one free slot cannot hold a pair");
        // Once Netty has submitted them (their completions are back), pairs link again.
        assertTrue(filled.await(10, TimeUnit.SECONDS));
        int[] res = readThenLinkedNop(0, 512);
        assertEquals(512, res[0]);
        assertEquals(0, res[1]);
    }

    /**
     * The behaviour the fill reading exists for, at every fill of the queue up to its edge: with {@code k} SQEs
     * already enqueued in the same loop turn, a short read linked to a no-op is either refused (no room for both) or
     * enqueued whole, and then the kernel cancels the no-op. Had Netty flushed between the two (the pair split), the
     * read would have run alone and the no-op after it, unlinked, with result 0.
     */
    @Test
    void atEveryFillOfTheQueueAPairIsLinkedWholeOrNotAtAll() throws Exception {
        MemorySegment buf = arena.allocate(4096, 4096);
        int pairs = 0;
        for (int k = 0; k <= RING; k++) {
            int fill = k;
            CountDownLatch filled = new CountDownLatch(fill);
            CompletableFuture<Integer> read = new CompletableFuture<>();
            CompletableFuture<Integer> nop = new CompletableFuture<>();
            int[] room = new int[1];
            boolean linked = loop().submit(() -> {
                        for (int i = 0; i < fill; i++) {
                            io.submit(Sqe.nop(), res -> filled.countDown());
                        }
                        room[0] = io.room();
                        return io.submitLinked(
                                Sqe.read(fd, 6144, buf.address(), 4096), // 2048 bytes short
                                record("read", read),
                                () -> io.submit(Sqe.nop(), record("nop", nop)));
                    })
                    .get(10, TimeUnit.SECONDS);
            assertEquals(room[0] >= 2, linked, "fill " + fill + ", room " + room[0]);
            pairs += linked ? 1 : 0;
            if (linked) {
                assertEquals(2048, read.get(10, TimeUnit.SECONDS), "fill " + fill);
                assertEquals(-Errno.ECANCELED, nop.get(10, TimeUnit.SECONDS), "fill " + fill + ": the pair was split");
            } else {
                assertFalse(read.isDone() || nop.isDone(), "fill " + fill + ": refused, so nothing was submitted");
            }
            assertTrue(filled.await(10, TimeUnit.SECONDS), "fill " + fill);
        }
        // Fills 0 to RING - 2 leave room for a pair (Netty may hold an SQE of its own: one less then).
        assertTrue(pairs >= RING - 2, pairs + " of " + (RING + 1) + " fills took a pair");
    }

    @Test
    void onlyTheTestedNettyVersionsAreRead() {
        assertNull(NettyRing.versionProblem(NettyRing.TESTED_FROM));
        assertNull(NettyRing.versionProblem(NettyRing.TESTED_TO));
        assertNull(NettyRing.versionProblem("4.2.16.Final"));
        for (String v : new String[] {
            "4.2.14.Final",
            "4.2.19.Final",
            "4.1.130.Final",
            "5.0.0.Final",
            "4.2.18.Final-SNAPSHOT",
            "4.2.17.Alpha1",
            "weird",
            null
        }) {
            String why = NettyRing.versionProblem(v);
            assertTrue(
                    why != null && why.contains(NettyRing.TESTED_FROM) && why.contains(NettyRing.TESTED_TO),
                    v + ": " + why);
        }
        // The build's own Netty is one of them, and the check reads its version from the jar.
        assertNull(NettyRing.versionProblem(NettyRing.nettyVersion()), NettyRing.nettyVersion());
    }

    @Test
    void offTheLoopNothingIsLinked() {
        assertFalse(io.submitLinked(Sqe.nop(), res -> {}, () -> {}));
    }
}

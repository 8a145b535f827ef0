package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.reactorubd.Errno;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoHandler;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The guard of a queue's registered-buffer slots, on a real io_uring ring of this machine: once the request holding a
 * slot is answered, an operation naming the slot is refused without reaching the kernel (its pages may already be the
 * tag's next request's), and the request's commit waits until the operations that named it before are back from the
 * kernel, including one still in Netty's submission queue when the answer came.
 */
class SlotGuardTest {
    private static final int LEN = 4096;

    @TempDir
    Path dir;

    private MultiThreadIoEventLoopGroup loops;
    private IoEventLoop loop;
    private Arena arena;

    @BeforeEach
    void setUp() {
        assumeTrue(IoUring.isAvailable(), "io_uring is not available here: " + IoUring.unavailabilityCause());
        loops = new MultiThreadIoEventLoopGroup(1, IoUringIoHandler.newFactory());
        loop = (IoEventLoop) loops.next();
        arena = Arena.ofShared();
    }

    @AfterEach
    void tearDown() {
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        if (arena != null) {
            arena.close();
        }
    }

    private static final class NoopHandle implements IoUringIoHandle {
        @Override
        public void handle(IoRegistration registration, IoEvent ioEvent) {}

        @Override
        public void close() {}
    }

    @Test
    void anAnsweredRequestsSlotTakesNoNewOperationAndItsCommitWaitsForThoseInFlight() throws Exception {
        Path file = Files.write(dir.resolve("data"), new byte[2 * LEN]);
        int fd = Libc.open(file.toString(), Libc.O_RDWR);
        assertTrue(fd >= 0, "open: " + fd);
        MemorySegment pages = arena.allocate(LEN, 4096);
        for (int i = 0; i < LEN; i++) {
            pages.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 7 + 1));
        }
        LoopIo io = LoopIo.register(loop).block(Duration.ofSeconds(10));
        IoRegistration reg = loop.register(new NoopHandle()).get(10, TimeUnit.SECONDS);
        List<Integer> idle = new CopyOnWriteArrayList<>();
        List<Integer> results = new CopyOnWriteArrayList<>();
        RingBufferTable.Reservation slots = loop.submit(() -> {
                    RingBufferTable.Reservation r = RingBufferTable.reserve(reg, 2);
                    r.register(0, pages);
                    r.guard(idle::add);
                    return r;
                })
                .get(10, TimeUnit.SECONDS);
        int slot = slots.base();
        // One loop task: Netty submits its queue when the task is over, so the write is not in the kernel yet when
        // the request is answered.
        boolean idleAtAnswer = loop.submit(() -> {
                    slots.hold(0);
                    io.submit(Sqe.writeFixed(fd, 0L, pages.address(), LEN, slot), res -> results.add(res));
                    boolean now = slots.retire(0);
                    assertEquals(1, slots.uses(0));
                    // Answered: the rest of a transfer, a re-send, anything naming the slot is refused at once.
                    io.submit(Sqe.writeFixed(fd, LEN, pages.address(), LEN, slot), res -> results.add(res));
                    return now;
                })
                .get(10, TimeUnit.SECONDS);
        assertFalse(idleAtAnswer, "a write naming the slot was still on its way: the commit must wait");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (idle.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(List.of(0), idle, "told once, when the write was back");
        assertEquals(List.of(-Errno.EFAULT, LEN), results, "the late one refused at once, the first one done");
        byte[] expected = new byte[LEN];
        MemorySegment.copy(pages, ValueLayout.JAVA_BYTE, 0, expected, 0, LEN);
        byte[] got = Files.readAllBytes(file);
        assertArrayEquals(expected, Arrays.copyOfRange(got, 0, LEN));
        assertArrayEquals(new byte[LEN], Arrays.copyOfRange(got, LEN, 2 * LEN), "the refused one wrote nothing");
        // Held again (the tag's next request): operations go, and a retire with none in flight is idle at once.
        boolean idleNow = loop.submit(() -> {
                    slots.hold(0);
                    return slots.retire(0);
                })
                .get(10, TimeUnit.SECONDS);
        assertTrue(idleNow);
        loop.submit(() -> {
                    slots.release();
                    io.close();
                })
                .get(10, TimeUnit.SECONDS);
        Libc.close(fd);
    }
}

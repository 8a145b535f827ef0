package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.reactorubd.UbdUnsupportedException;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoHandler;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The buffer table on real Netty io_uring rings of this machine's kernel: registered on first use, slots handed out
 * in consecutive runs per queue, given back, and one table per loop.
 */
class RingBufferTableTest {
    private MultiThreadIoEventLoopGroup loops;

    @BeforeEach
    void loops() {
        assumeTrue(IoUring.isAvailable(), "io_uring is not available here: " + IoUring.unavailabilityCause());
        loops = new MultiThreadIoEventLoopGroup(2, IoUringIoHandler.newFactory());
    }

    @AfterEach
    void shutdown() {
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private static <T> T onLoop(IoEventLoop loop, Callable<T> task) throws Exception {
        return loop.submit(task).get(10, TimeUnit.SECONDS);
    }

    private static IoRegistration register(IoEventLoop loop) throws Exception {
        return loop.register(new NoopHandle()).get(10, TimeUnit.SECONDS);
    }

    @Test
    void queuesGetConsecutiveRunsThatComeBackWhenReleased() throws Exception {
        IoEventLoop loop = (IoEventLoop) loops.next();
        IoRegistration reg = register(loop);
        RingBufferTable.Reservation a = onLoop(loop, () -> RingBufferTable.reserve(reg, 128));
        RingBufferTable.Reservation b = onLoop(loop, () -> RingBufferTable.reserve(reg, 64));
        assertEquals(0, a.base());
        assertEquals(128, b.base());
        assertEquals(64, b.count());
        onLoop(loop, () -> {
            a.release();
            a.release(); // again: a no-op, not a second give-back
            return null;
        });
        RingBufferTable.Reservation c = onLoop(loop, () -> RingBufferTable.reserve(reg, 100));
        assertEquals(0, c.base(), "the first free run that fits");
        RingBufferTable.Reservation d = onLoop(loop, () -> RingBufferTable.reserve(reg, 29));
        assertEquals(192, d.base(), "29 slots do not fit in the 28 left before b");
        UbdUnsupportedException full = assertThrows(
                UbdUnsupportedException.class,
                () -> onLoopUnwrapped(loop, () -> RingBufferTable.reserve(reg, RingBufferTable.SLOTS)));
        assertTrue(full.getMessage().contains("free consecutive slots"), full.getMessage());
        onLoop(loop, () -> {
            b.release();
            c.release();
            d.release();
            return null;
        });
        RingBufferTable.Reservation all = onLoop(loop, () -> RingBufferTable.reserve(reg, RingBufferTable.SLOTS));
        assertEquals(0, all.base(), "every slot came back");
        onLoop(loop, () -> {
            all.release();
            reg.cancel();
            return null;
        });
    }

    @Test
    void eachLoopHasATableOfItsOwn() throws Exception {
        IoEventLoop one = (IoEventLoop) loops.next();
        IoEventLoop two = (IoEventLoop) loops.next();
        assertTrue(one != two, "two loops");
        IoRegistration r1 = register(one);
        IoRegistration r2 = register(two);
        RingBufferTable.Reservation a = onLoop(one, () -> RingBufferTable.reserve(r1, RingBufferTable.SLOTS));
        RingBufferTable.Reservation b = onLoop(two, () -> RingBufferTable.reserve(r2, 64));
        assertEquals(0, a.base());
        assertEquals(0, b.base(), "the other loop's table is untouched");
        onLoop(one, () -> {
            a.release();
            return null;
        });
        onLoop(two, () -> {
            b.release();
            return null;
        });
    }

    private static <T> T onLoopUnwrapped(IoEventLoop loop, Callable<T> task) throws Throwable {
        try {
            return onLoop(loop, task);
        } catch (ExecutionException e) {
            throw e.getCause();
        }
    }

    /** A handle that only holds a registration with a loop. */
    private static final class NoopHandle implements IoUringIoHandle {
        @Override
        public void handle(IoRegistration registration, IoEvent ioEvent) {}

        @Override
        public void close() {}
    }
}

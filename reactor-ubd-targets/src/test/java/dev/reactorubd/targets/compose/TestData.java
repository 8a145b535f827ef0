package dev.reactorubd.targets.compose;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import reactor.core.publisher.Mono;

/** Helpers of the compose tests: test data, reads that release their buffer, error checks, a recording backend. */
final class TestData {
    static final Duration WAIT = Duration.ofSeconds(20);
    static final int KIB = 1024;
    static final int MIB = 1024 * 1024;

    private TestData() {}

    static byte[] bytes(long seed, int length) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    static ByteBuf buf(byte[] data) {
        return Unpooled.wrappedBuffer(data);
    }

    /** Reads through the device and returns the bytes; the buffer is released. */
    static byte[] read(VirtualDevice dev, int q, long offset, int length) {
        ByteBuf b = dev.read(q, offset, length).block(WAIT);
        try {
            return ByteBufUtil.getBytes(b);
        } finally {
            b.release();
        }
    }

    /** Reads a backend directly (a part, to check where data landed); the buffer is released. */
    static byte[] direct(BlockBackend backend, long offset, int length) {
        ByteBuf b = backend.read(offset, length, PooledByteBufAllocator.DEFAULT).block(WAIT);
        try {
            return ByteBufUtil.getBytes(b);
        } finally {
            b.release();
        }
    }

    /** A predicate for StepVerifier's expectErrorMatches: a UbdIoException with that errno. */
    static Predicate<Throwable> errno(int errno) {
        return e -> e instanceof UbdIoException u && u.errno() == errno;
    }

    static void assertErrno(int errno, Throwable e) {
        assertTrue(e instanceof UbdIoException, "a UbdIoException: " + e);
        assertEquals(errno, ((UbdIoException) e).errno(), e.toString());
    }

    /** Memory that does not say its size (as NullBackend does not; this one holds no buffer for life). */
    static BlockBackend unknownSize() {
        return new Recording(new MemoryBackend(MIB)) {
            @Override
            public long size() {
                return UNKNOWN_SIZE;
            }
        };
    }

    /** A write (or other modification) a {@link Recording} backend saw. */
    record Op(String op, long offset, long length) {}

    /** Passes everything to a backend and records every modifying request it sees. */
    static class Recording implements BlockBackend {
        final BlockBackend inner;
        final List<Op> ops = new CopyOnWriteArrayList<>();

        Recording(BlockBackend inner) {
            this.inner = inner;
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return inner.read(offset, length, allocator);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            ops.add(new Op("write", offset, data.readableBytes()));
            return inner.write(offset, data, fua);
        }

        @Override
        public Mono<Void> flush() {
            ops.add(new Op("flush", 0, 0));
            return inner.flush();
        }

        @Override
        public Mono<Void> discard(long offset, long length) {
            ops.add(new Op("discard", offset, length));
            return inner.discard(offset, length);
        }

        @Override
        public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
            ops.add(new Op("write-zeroes", offset, length));
            return inner.writeZeroes(offset, length, noUnmap);
        }

        @Override
        public Set<Capability> capabilities() {
            return inner.capabilities();
        }

        @Override
        public long size() {
            return inner.size();
        }

        @Override
        public Mono<Void> close() {
            return inner.close();
        }

        @Override
        public String toString() {
            return "recording(" + inner + ")";
        }
    }

    /**
     * Waits (bounded by {@link #WAIT}) until {@code count} has not changed for {@code quiet}: work that a condition saw
     * begin (a bit cleared in memory) has also ended (its page written and counted).
     */
    static void awaitSettled(LongSupplier count, Duration quiet, String what) {
        long end = System.nanoTime() + WAIT.toNanos();
        long last = count.getAsLong();
        long since = System.nanoTime();
        while (System.nanoTime() - since < quiet.toNanos()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting for " + what + " to settle; still changing at " + last);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            long now = count.getAsLong();
            if (now != last) {
                last = now;
                since = System.nanoTime();
            }
        }
    }

    /** Waits (polling, bounded by {@link #WAIT}) until {@code c} holds; fails naming {@code what} otherwise. */
    static void await(BooleanSupplier c, String what) {
        long end = System.nanoTime() + WAIT.toNanos();
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting: " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }
}

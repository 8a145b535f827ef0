package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/**
 * A WRITE whose data finds no memory at once (the direct memory bound reached by the buffers of requests in flight)
 * waits for it instead of failing: a moment's shortage must not reach the writer above as an I/O error. Before this,
 * such a write failed with ENOMEM at the first refusal (seen on Linux 6.12 in MemoryPressureDeviceTest, a server
 * with {@code -XX:MaxDirectMemorySize=64m} and 2 x 128 tags of 512 KiB writes).
 */
class WriteBufferWaitTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final int SIZE = 1 << 20;

    /** Refuses direct buffers while {@code refusals} is above 0 (counting down), as a full direct memory does. */
    static final class ShortOfMemory extends AbstractByteBufAllocator {
        final AtomicInteger refusals = new AtomicInteger();
        private final ByteBufAllocator real = new UnpooledByteBufAllocator(true);

        ShortOfMemory() {
            super(true);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            return real.heapBuffer(initialCapacity, maxCapacity);
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            if (refusals.getAndUpdate(n -> n > 0 && n != Integer.MAX_VALUE ? n - 1 : n) > 0) {
                throw new OutOfMemoryError("Cannot reserve " + initialCapacity + " bytes of direct buffer memory");
            }
            return real.directBuffer(initialCapacity, maxCapacity);
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }
    }

    /** A RAM disk whose WRITE data comes from {@link ShortOfMemory}. */
    static final class Ram implements BlockBackend {
        final byte[] bytes = new byte[SIZE];
        final ShortOfMemory alloc = new ShortOfMemory();

        @Override
        public long size() {
            return SIZE;
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return Mono.fromSupplier(() -> Unpooled.copiedBuffer(bytes, (int) offset, length));
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.fromRunnable(
                    () -> data.getBytes(data.readerIndex(), bytes, (int) offset, data.readableBytes()));
        }

        @Override
        public ByteBufAllocator allocator() {
            return alloc;
        }
    }

    private static byte[] pattern(int seed, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 31 + i);
        }
        return b;
    }

    @Test
    void aWriteThatFindsNoMemoryWaitsForItAndLands() {
        Ram ram = new Ram();
        try (VirtualDevice dev = VirtualDevice.serve(ram, 1, 8)) {
            ram.alloc.refusals.set(5); // five refusals: 1 + 2 + 4 + 8 + 16 ms of waiting
            byte[] data = pattern(7, 4096);
            ByteBuf in = Unpooled.wrappedBuffer(data);
            StepVerifier.create(dev.write(0, 8192, in)).verifyComplete();
            assertEquals(0, ram.alloc.refusals.get(), "every refusal was met by another attempt");
            assertArrayEquals(data, Arrays.copyOfRange(ram.bytes, 8192, 8192 + 4096), "the write landed");
            assertEquals(1, dev.queues().get(0).writesWaitedForMemoryCount());
            assertEquals(0, dev.queues().get(0).failedCount());
        }
    }

    @Test
    void theWaitIsBoundedByTheRequestTimeoutAndTheDeviceGoesOn() {
        Ram ram = new Ram();
        try (VirtualDevice dev = VirtualDevice.serve(ram, 1, 8, Duration.ofMillis(300))) {
            ram.alloc.refusals.set(Integer.MAX_VALUE); // never any memory
            long start = System.nanoTime();
            StepVerifier.create(dev.write(0, 0, Unpooled.wrappedBuffer(pattern(1, 4096))))
                    .expectErrorSatisfies(e -> assertEquals(Errno.ENOMEM, ((UbdIoException) e).errno(), e.getMessage()))
                    .verify(WAIT);
            long waitedMillis = (System.nanoTime() - start) / 1_000_000;
            assertTrue(waitedMillis >= 300, "failed only once the request timeout had passed: " + waitedMillis + " ms");
            assertArrayEquals(new byte[4096], Arrays.copyOfRange(ram.bytes, 0, 4096), "nothing written");

            ram.alloc.refusals.set(0); // memory is back
            byte[] data = pattern(2, 4096);
            StepVerifier.create(dev.write(0, 0, Unpooled.wrappedBuffer(data))).verifyComplete();
            assertArrayEquals(data, Arrays.copyOfRange(ram.bytes, 0, 4096));
        }
    }
}

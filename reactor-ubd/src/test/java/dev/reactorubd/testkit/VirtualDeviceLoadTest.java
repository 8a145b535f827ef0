package dev.reactorubd.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** The test kit's load: every request reaches the backend once, failures are counted, stopping ends it. */
class VirtualDeviceLoadTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final long SPAN = 1 << 20;

    /** Counts requests per offset; fails those at or beyond failFrom; reads return 0xAB bytes. */
    static final class Counting implements BlockBackend {
        final ConcurrentHashMap<Long, AtomicLong> writes = new ConcurrentHashMap<>();
        final AtomicLong reads = new AtomicLong();
        final AtomicLong badLength = new AtomicLong();
        final long failFrom;

        Counting(long failFrom) {
            this.failFrom = failFrom;
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            reads.incrementAndGet();
            if (offset >= failFrom) {
                return Mono.error(new UbdIoException(Errno.ENOSPC, "full"));
            }
            ByteBuf b = allocator.directBuffer(length, length);
            for (int i = 0; i < length; i++) {
                b.writeByte(0xAB);
            }
            return Mono.just(b);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            if (data.readableBytes() != 4096) {
                badLength.incrementAndGet();
            }
            writes.computeIfAbsent(offset, o -> new AtomicLong()).incrementAndGet();
            return offset >= failFrom ? Mono.error(new UbdIoException(Errno.EIO, "bad sector")) : Mono.empty();
        }
    }

    @Test
    void everyRequestOfALoadReachesTheBackendOnceAndIsCounted() {
        Counting backend = new Counting(Long.MAX_VALUE);
        try (VirtualDevice dev = VirtualDevice.serve(backend, 1, 32)) {
            // (The test suite's leak detector records every buffer: a few thousand requests take seconds.)
            assertEquals(0L, dev.load(0, IoOp.WRITE, 4096, SPAN, 2_560 + 5).block(WAIT));
            assertEquals(0L, dev.load(0, IoOp.READ, 4096, SPAN, 1_000).block(WAIT));
            // 2,565 writes over the span's 256 offsets: ten turns, then the first 5 offsets once more.
            assertEquals(SPAN / 4096, backend.writes.size());
            for (long slot = 0; slot < SPAN / 4096; slot++) {
                assertEquals(slot < 5 ? 11 : 10, backend.writes.get(slot * 4096).get(), "writes at slot " + slot);
            }
            assertEquals(0, backend.badLength.get());
            assertEquals(1_000, backend.reads.get());
            assertEquals(3_565, dev.queue(0).completedCount());
            assertEquals(0, dev.queue(0).inFlightCount());
        }
    }

    @Test
    void failuresAreCountedNotThrown() {
        Counting backend = new Counting(SPAN / 2);
        try (VirtualDevice dev = VirtualDevice.serve(backend, 2, 8)) {
            // Whole turns of the span's 256 offsets: half of them at or beyond failFrom.
            assertEquals(256L, dev.load(1, IoOp.WRITE, 4096, SPAN, 512).block(WAIT));
            assertEquals(128L, dev.load(1, IoOp.READ, 4096, SPAN, 256).block(WAIT));
            assertEquals(384, dev.queue(1).failedCount());
            assertEquals(0, dev.queue(0).completedCount() + dev.queue(0).failedCount());
        }
    }

    @Test
    void stoppingTheDeviceEndsARunningLoadWithAnError() {
        // A backend that never answers holds every tag: the load cannot finish, only stopping can end it.
        BlockBackend silent = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return Mono.never();
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.never();
            }
        };
        VirtualDevice dev = VirtualDevice.serve(silent, 1, 4, Duration.ofMillis(200), UbdMetrics.NONE);
        try {
            // The 200 ms request timeout answers the silent backend's requests with ETIMEDOUT: they fail, counted.
            assertEquals(8L, dev.load(0, IoOp.WRITE, 4096, SPAN, 8).block(WAIT));
            Mono<Long> endless = dev.load(0, IoOp.WRITE, 4096, SPAN, Long.MAX_VALUE);
            StepVerifier.create(endless)
                    .then(() -> dev.stop().subscribe())
                    .expectErrorSatisfies(e -> assertTrue(e.getMessage().contains("device stopped"), e::getMessage))
                    .verify(WAIT);
        } finally {
            dev.close();
        }
    }

    @Test
    void aLoadIsCheckedBeforeItStarts() {
        try (VirtualDevice dev = VirtualDevice.serve(new Counting(Long.MAX_VALUE), 1, 4)) {
            assertThrows(IllegalArgumentException.class, () -> dev.load(0, IoOp.DISCARD, 4096, SPAN, 1));
            assertThrows(IllegalArgumentException.class, () -> dev.load(0, IoOp.READ, 4096, 1024, 1));
            assertThrows(IllegalArgumentException.class, () -> dev.load(0, IoOp.WRITE, 4096, SPAN, 0));
        }
    }
}

package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.direct;
import static dev.reactorubd.targets.compose.TestData.errno;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;

/** The read cache through the test kit: hits, invalidation, failed writes, eviction, and reads racing writes. */
class CacheBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** Memory that counts the reads reaching it. */
    static final class Counting extends TestData.Recording {
        final AtomicInteger reads = new AtomicInteger();

        Counting(BlockBackend inner) {
            super(inner);
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            reads.incrementAndGet();
            return super.read(offset, length, allocator);
        }
    }

    @Test
    void readsHitAfterTheFirstAndCountTheirStatistics() {
        Counting slow = new Counting(new MemoryBackend(MIB));
        CacheBackend cache = Backends.from(slow).cache(256 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            byte[] data = bytes(1, 64 * KIB);
            dev.write(0, 0, buf(data)).block(WAIT);
            assertArrayEquals(data, read(dev, 0, 0, 64 * KIB));
            assertEquals(1, slow.reads.get());
            assertArrayEquals(data, read(dev, 1, 0, 64 * KIB), "the same read, from the other queue");
            assertArrayEquals(
                    Arrays.copyOfRange(data, 4 * KIB + 512, 12 * KIB),
                    read(dev, 0, 4 * KIB + 512, 8 * KIB - 512),
                    "a read inside cached blocks, not block-aligned");
            assertEquals(1, slow.reads.get(), "hits do not reach the backend");
            CacheStats s = cache.stats();
            assertEquals(2, s.hits());
            assertEquals(1, s.misses());
            assertEquals(64 * KIB, s.cachedBytes());
            assertEquals(256 * KIB, s.capacityBytes());
            // A miss that is not block-aligned caches only the blocks it covers entirely.
            read(dev, 0, 100 * KIB + 512, 8 * KIB);
            assertEquals(64 * KIB + 4 * KIB, cache.stats().cachedBytes());
        }
    }

    @Test
    void writesDiscardsAndWriteZeroesInvalidate() {
        Counting slow = new Counting(new MemoryBackend(MIB));
        CacheBackend cache = Backends.from(slow).cache(256 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            dev.write(0, 0, buf(bytes(1, 32 * KIB))).block(WAIT);
            read(dev, 0, 0, 32 * KIB);
            byte[] next = bytes(2, 4 * KIB);
            dev.write(1, 8 * KIB, buf(next)).block(WAIT);
            assertArrayEquals(next, read(dev, 0, 8 * KIB, 4 * KIB), "the new data, not the cached");
            assertEquals(2, slow.reads.get());
            assertArrayEquals(
                    Arrays.copyOfRange(bytes(1, 32 * KIB), 0, 8 * KIB),
                    read(dev, 1, 0, 8 * KIB),
                    "the blocks beside it stay cached");
            assertEquals(2, slow.reads.get());

            dev.discard(0, 0, 4 * KIB).block(WAIT);
            assertArrayEquals(new byte[4 * KIB], read(dev, 1, 0, 4 * KIB));
            read(dev, 0, 16 * KIB, 16 * KIB);
            dev.writeZeroes(1, 20 * KIB, 4 * KIB).block(WAIT);
            assertArrayEquals(new byte[4 * KIB], read(dev, 0, 20 * KIB, 4 * KIB));
        }
    }

    /** Stores the data, then reports a failure, as a backend that half-did a write can. */
    static final class WritesThenFails extends TestData.Recording {
        WritesThenFails(BlockBackend inner) {
            super(inner);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return super.write(offset, data, fua)
                    .then(Mono.error(new UbdIoException(Errno.EIO, "stored, then failed")));
        }
    }

    @Test
    void aFailedWriteLeavesNoStaleData() {
        MemoryBackend mem = new MemoryBackend(MIB);
        mem.write(0, buf(bytes(1, 16 * KIB)), false).block(WAIT);
        CacheBackend cache = Backends.from(new WritesThenFails(mem)).cache(256 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            assertArrayEquals(bytes(1, 16 * KIB), read(dev, 0, 0, 16 * KIB));
            StepVerifier.create(dev.write(1, 0, buf(bytes(2, 16 * KIB))))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            assertArrayEquals(bytes(2, 16 * KIB), read(dev, 0, 0, 16 * KIB), "what the backend holds now");
            assertEquals(0, cache.stats().hits());
        }
    }

    @Test
    void evictionKeepsTheBoundAndDropsTheLeastRecentlyUsed() {
        Counting slow = new Counting(new MemoryBackend(MIB));
        CacheBackend cache = Backends.from(slow).cache(64 * KIB, 4 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            for (int i = 0; i < 16; i++) {
                read(dev, i % 2, i * 4L * KIB, 4 * KIB);
            }
            assertEquals(64 * KIB, cache.stats().cachedBytes());
            read(dev, 0, 0, 4 * KIB);
            assertEquals(1, cache.stats().hits(), "block 0 is used again, so block 1 is now the oldest");
            read(dev, 0, 16 * 4L * KIB, 4 * KIB);
            assertEquals(1, cache.stats().evictions());
            int before = slow.reads.get();
            read(dev, 1, 0, 4 * KIB);
            assertEquals(before, slow.reads.get(), "block 0 stayed");
            read(dev, 1, 4 * KIB, 4 * KIB);
            assertEquals(before + 1, slow.reads.get(), "block 1 was evicted");
            for (int i = 0; i < 200; i++) {
                read(dev, i % 2, (i % 100) * 8L * KIB, 8 * KIB);
                assertTrue(cache.stats().cachedBytes() <= 64 * KIB, "within the bound");
            }
        }
    }

    /** Memory whose reads take their data at once but answer only when the test lets them go. */
    static final class HeldReads extends TestData.Recording {
        final CountDownLatch called = new CountDownLatch(1);
        final Sinks.Empty<Void> go = Sinks.empty();
        volatile boolean hold = true;

        HeldReads(BlockBackend inner) {
            super(inner);
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            Mono<ByteBuf> now = super.read(offset, length, allocator);
            if (!hold) {
                return now;
            }
            hold = false;
            return now.flatMap(b -> {
                called.countDown();
                return go.asMono().thenReturn(b);
            });
        }
    }

    @Test
    void aReadThatRacedAWriteNeverCachesWhatItRead() throws InterruptedException {
        MemoryBackend mem = new MemoryBackend(MIB);
        mem.write(0, buf(bytes(1, 8 * KIB)), false).block(WAIT);
        HeldReads held = new HeldReads(mem);
        CacheBackend cache = Backends.from(held).cache(256 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            // The read takes the old bytes, then waits; meanwhile a write replaces them and completes.
            Mono<byte[]> slowRead = dev.read(0, 0, 8 * KIB)
                    .map(b -> {
                        try {
                            return ByteBufUtil.getBytes(b);
                        } finally {
                            b.release();
                        }
                    })
                    .cache();
            slowRead.subscribe(x -> {}, e -> {});
            assertTrue(held.called.await(10, TimeUnit.SECONDS));
            dev.write(1, 0, buf(bytes(2, 8 * KIB))).block(WAIT);
            held.go.tryEmitEmpty();
            assertArrayEquals(bytes(1, 8 * KIB), slowRead.block(WAIT), "the raced read saw the old bytes");
            assertEquals(0, cache.stats().cachedBytes(), "and did not cache them");
            assertArrayEquals(bytes(2, 8 * KIB), read(dev, 1, 0, 8 * KIB));
        }
    }

    @Test
    void concurrentReadsAndWritesOnTwoQueuesLeaveTheCacheAgreeingWithTheBackend() {
        MemoryBackend mem = new MemoryBackend(MIB);
        CacheBackend cache = Backends.from(mem).cache(128 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            Random random = new Random(5);
            List<Integer> blocks = random.ints(2000, 0, 48).boxed().toList();
            StepVerifier.create(Flux.fromIterable(blocks)
                            .index()
                            .flatMap(
                                    t -> {
                                        int q = (int) (t.getT1() % 2);
                                        long at = t.getT2() * 4L * KIB;
                                        return t.getT1() % 3 == 0
                                                ? dev.write(q, at, buf(bytes(t.getT1(), 4 * KIB)))
                                                        .then(Mono.just(0))
                                                : dev.read(q, at, 8 * KIB).map(b -> {
                                                    b.release();
                                                    return 1;
                                                });
                                    },
                                    32)
                            .then())
                    .verifyComplete();
            assertTrue(cache.stats().hits() > 0, "the cache was used: " + cache.stats());
            for (int block = 0; block < 48; block++) {
                assertArrayEquals(
                        direct(mem, block * 4L * KIB, 4 * KIB),
                        read(dev, block % 2, block * 4L * KIB, 4 * KIB),
                        "block " + block);
            }
        }
    }
}

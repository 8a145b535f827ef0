package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** The fluent API, binding to queues, closing, sizes and capabilities of composed backends. */
class BackendsTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void fromWrapsOnceAndPassesEverythingThrough() {
        MemoryBackend mem = new MemoryBackend(MIB);
        ComposableBackend c = Backends.from(mem);
        assertSame(c, Backends.from(c));
        assertEquals(MIB, c.size());
        assertEquals(mem.capabilities(), c.capabilities());
        assertSame(mem.allocator(), c.allocator());
        CacheBackend cached = c.cache(64 * KIB);
        assertSame(cached, Backends.from(cached));
        assertEquals(
                MIB,
                cached.timeout(Duration.ofSeconds(1))
                        .retry(2, Duration.ZERO)
                        .limitRate(1, 1)
                        .size());
    }

    @Test
    void aChainOfDecoratorsOverCompositesServesTheDevice() {
        MemoryBackend a = new MemoryBackend(MIB);
        MemoryBackend b = new MemoryBackend(MIB);
        MemoryBackend c = new MemoryBackend(MIB);
        MemoryBackend d = new MemoryBackend(MIB);
        // A mirror of a stripe and a concat, cached, with timeouts, retries and an (ample) rate limit.
        MirrorBackend mirror = Backends.mirror(Backends.stripe(16 * KIB, a, b), Backends.concat(c, d));
        BlockBackend served = mirror.cache(256 * KIB)
                .timeout(Duration.ofSeconds(5))
                .retry(3, Duration.ofMillis(10))
                .limitRate(100_000, 0);
        assertEquals(2 * MIB, served.size());
        try (VirtualDevice dev = VirtualDevice.serve(served, 2, 16)) {
            StepVerifier.create(Flux.range(0, 32)
                            .flatMap(i -> dev.write(i % 2, i * 48L * KIB, buf(bytes(i, 40 * KIB))), 16)
                            .then())
                    .verifyComplete();
            for (int i = 0; i < 32; i++) {
                assertArrayEquals(bytes(i, 40 * KIB), read(dev, (i + 1) % 2, i * 48L * KIB, 40 * KIB));
            }
            // Through the concat: device byte 1 MiB + 8 KiB is byte 8 KiB of its second part.
            assertArrayEquals(TestData.direct(mirror, MIB + 8 * KIB, 4 * KIB), TestData.direct(d, 8 * KIB, 4 * KIB));
        }
    }

    /**
     * A backend that binds one object per queue, each checking that it is called on its queue's loop only; the first
     * request of each bound object fails with EIO, so that retries and failover re-issue requests.
     */
    static final class PerQueue implements BlockBackend {
        final MemoryBackend mem = new MemoryBackend(MIB);
        final List<String> wrongThread = new CopyOnWriteArrayList<>();
        final List<Integer> bound = new CopyOnWriteArrayList<>();
        final AtomicInteger calls = new AtomicInteger();

        @Override
        public Mono<BlockBackend> bind(UbdQueue queue) {
            bound.add(queue.id());
            return Mono.just(new BlockBackend() {
                final AtomicInteger mine = new AtomicInteger();

                private <T> Mono<T> on(Supplier<Mono<T>> call) {
                    calls.incrementAndGet();
                    if (!queue.loop().inEventLoop()) {
                        wrongThread.add(Thread.currentThread().getName());
                    }
                    return mine.getAndIncrement() == 0
                            ? Mono.error(new UbdIoException(Errno.EIO, "first"))
                            : call.get();
                }

                @Override
                public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                    return on(() -> mem.read(offset, length, allocator));
                }

                @Override
                public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                    return on(() -> mem.write(offset, data, fua));
                }

                @Override
                public long size() {
                    return MIB;
                }
            });
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return Mono.error(new IllegalStateException("unbound call"));
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.error(new IllegalStateException("unbound call"));
        }

        @Override
        public long size() {
            return MIB;
        }
    }

    @Test
    void boundViewsUseEachQueuesBoundPartsOnThatQueuesLoopAndShareState() {
        PerQueue p = new PerQueue();
        CacheBackend cache = Backends.from(p).retry(3, Duration.ofMillis(1)).cache(256 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(cache, 2, 16)) {
            assertEquals(List.of(0, 1), p.bound);
            dev.write(0, 0, buf(bytes(1, 8 * KIB))).block(WAIT);
            dev.write(1, 8 * KIB, buf(bytes(2, 8 * KIB))).block(WAIT);
            assertArrayEquals(bytes(1, 8 * KIB), read(dev, 1, 0, 8 * KIB));
            assertArrayEquals(bytes(1, 8 * KIB), read(dev, 0, 0, 8 * KIB));
            assertEquals(1, cache.stats().hits(), "the unbound cache sees what its bound views cached");
        }
        assertEquals(List.of(), p.wrongThread, "retries went to the bound part on its own loop");
        assertEquals(5, p.calls.get(), "two failed first tries, retried");

        PerQueue r0 = new PerQueue();
        PerQueue r1 = new PerQueue();
        MirrorBackend mirror = Backends.mirror(r0, r1);
        try (VirtualDevice dev = VirtualDevice.serve(Backends.stripe(4 * KIB, mirror, new MemoryBackend(MIB)), 2, 16)) {
            // Both replicas' queue-0 parts fail their first request: no in-sync replica took the write.
            StepVerifier.create(dev.write(0, 0, buf(bytes(3, 4 * KIB))))
                    .expectErrorMatches(TestData.errno(Errno.EIO))
                    .verify(WAIT);
        }
        assertEquals(List.of(0, 1), r0.bound);
        assertEquals(List.of(0, 1), r1.bound);
        assertEquals(List.of(), r0.wrongThread);
        assertEquals(
                List.of(ReplicaState.FAILED, ReplicaState.FAILED),
                mirror.states(),
                "the unbound mirror sees what its bound views saw");
    }

    @Test
    void mirrorReadFailoverRunsOnTheQueuesLoop() {
        PerQueue r0 = new PerQueue();
        MemoryBackend r1 = new MemoryBackend(MIB);
        MirrorBackend mirror = Backends.mirror(r0, r1);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            // Round-robin sends the first read to replica 0, whose bound part fails it; replica 1 answers.
            assertArrayEquals(new byte[4 * KIB], read(dev, 1, 0, 4 * KIB));
            assertEquals(ReplicaState.FAILED, mirror.state(0));
            assertEquals(2, mirror.replicas().size());
        }
        assertEquals(List.of(), r0.wrongThread);
    }

    /** Counts closes. */
    static final class Closing extends TestData.Recording {
        final AtomicInteger closed = new AtomicInteger();

        Closing(long size) {
            super(new MemoryBackend(size));
        }

        @Override
        public Mono<Void> close() {
            return Mono.fromRunnable(closed::incrementAndGet);
        }
    }

    @Test
    void closingACompositeClosesEveryPartOnce() {
        Closing a = new Closing(MIB);
        Closing b = new Closing(MIB);
        Closing c = new Closing(MIB);
        BlockBackend all = Backends.concat(Backends.mirror(a, b), Backends.stripe(4 * KIB, c))
                .retry(2, Duration.ZERO);
        StepVerifier.create(all.close().then(all.close())).verifyComplete();
        assertEquals(List.of(1, 1, 1), List.of(a.closed.get(), b.closed.get(), c.closed.get()));
    }

    /** Memory that claims the capabilities given. */
    static final class Claims extends TestData.Recording {
        final Set<Capability> caps;
        final ByteBufAllocator alloc = new UnpooledByteBufAllocator(true);

        Claims(Capability... caps) {
            super(new MemoryBackend(MIB));
            this.caps = caps.length == 0 ? EnumSet.noneOf(Capability.class) : EnumSet.of(caps[0], caps);
        }

        @Override
        public Set<Capability> capabilities() {
            return caps;
        }

        @Override
        public ByteBufAllocator allocator() {
            return alloc;
        }
    }

    @Test
    void capabilitiesAndAllocatorComeFromTheParts() {
        Claims full = new Claims(Capability.FLUSH, Capability.FUA, Capability.DISCARD, Capability.WRITE_ZEROES);
        Claims discardOnly = new Claims(Capability.DISCARD);
        Claims flushNoFua = new Claims(Capability.FLUSH, Capability.DISCARD);
        assertEquals(
                Set.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD),
                Backends.mirror(full, discardOnly).capabilities());
        assertEquals(
                Set.of(Capability.FLUSH, Capability.DISCARD),
                Backends.stripe(4 * KIB, full, flushNoFua).capabilities());
        assertEquals(
                Set.of(Capability.FLUSH, Capability.FUA),
                Backends.concat(full, new Claims()).capabilities(),
                "one part's volatile cache makes the whole's; the other part writes durably anyway");
        assertEquals(
                Set.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD),
                Backends.mirror(full, discardOnly)
                        .cache(64 * KIB)
                        .timeout(Duration.ofSeconds(1))
                        .capabilities());
        assertSame(discardOnly.alloc, Backends.concat(discardOnly, full).allocator());
        assertSame(
                full.alloc, Backends.mirror(full, discardOnly).limitRate(1, 0).allocator());
        assertNotSame(full.alloc, discardOnly.alloc);
        // A capability a part lacks fails at the composite, without reaching any part.
        try (VirtualDevice dev = VirtualDevice.serve(Backends.mirror(full, discardOnly), 1, 4)) {
            StepVerifier.create(dev.writeZeroes(0, 0, 4 * KIB))
                    .expectErrorMatches(TestData.errno(Errno.EOPNOTSUPP))
                    .verify(WAIT);
            assertEquals(List.of(), full.ops);
        }
    }
}

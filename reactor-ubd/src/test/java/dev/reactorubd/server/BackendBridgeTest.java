package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.ref.WeakReference;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/** A misbehaving backend fails only the request it got wrong; memory follows in-flight IO. */
class BackendBridgeTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    /** Behaves by offset: 0 throws, 4096 returns empty, 8192 the wrong length, 12288 ENOSPC, else fine. */
    static final class Misbehaving implements BlockBackend {
        final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            if (offset == 0) {
                throw new IllegalStateException("thrown, not signalled");
            }
            if (offset == 4096) {
                return Mono.empty();
            }
            if (offset == 8192) {
                return Mono.just(allocator.directBuffer(length / 2).writeZero(length / 2));
            }
            if (offset == 12288) {
                return Mono.error(new UbdIoException(Errno.ENOSPC, "typed"));
            }
            // Answer from another thread, as an RPC client would.
            return Mono.fromSupplier(() -> allocator.directBuffer(length).writeZero(length))
                    .subscribeOn(Schedulers.parallel());
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            if (offset == 0) {
                return Mono.error(new RuntimeException("untyped"));
            }
            return Mono.delay(Duration.ofMillis(1)).then();
        }

        @Override
        public ByteBufAllocator allocator() {
            return alloc;
        }
    }

    @Test
    void aFailedRequestIsLoggedWithItsReasonAtMostOnceASecondPerQueue() throws Exception {
        BlockBackend failing = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return Mono.error(new UbdIoException(Errno.ENOSPC, "shard 7 is full"));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.empty();
            }
        };
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true));
        try (VirtualDevice dev = VirtualDevice.serve(failing, 1, 4)) {
            for (int i = 0; i < 5; i++) {
                StepVerifier.create(dev.read(0, 4096L * i, 4096))
                        .expectError(UbdIoException.class)
                        .verify(WAIT);
            }
            Thread.sleep(1100);
            StepVerifier.create(dev.read(0, 65536, 4096))
                    .expectError(UbdIoException.class)
                    .verify(WAIT);
        } finally {
            System.setErr(err);
        }
        List<String> lines =
                captured.toString().lines().filter(l -> l.contains("WARN")).toList();
        assertEquals(2, lines.size(), captured.toString());
        assertTrue(
                lines.get(0).contains("READ @0+4096")
                        && lines.get(0).contains("ENOSPC")
                        && lines.get(0).contains("shard 7 is full"),
                lines.get(0));
        assertTrue(
                lines.get(1).contains("READ @65536+4096") && lines.get(1).contains("4 more failures not logged"),
                lines.get(1));
    }

    @Test
    void aMonoThatNeverCompletesFailsWithEtimedoutAndItsLateBufferIsReleased() {
        List<MonoSink<ByteBuf>> late = new CopyOnWriteArrayList<>();
        BlockBackend stuck = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                if (offset == 0) {
                    return Mono.create(late::add); // never answered in time
                }
                return Mono.just(allocator.directBuffer(length).writeZero(length));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.never();
            }
        };
        try (VirtualDevice dev = VirtualDevice.serve(stuck, 1, 4, Duration.ofMillis(200))) {
            long t0 = System.nanoTime();
            StepVerifier.create(dev.read(0, 0, 4096))
                    .expectErrorSatisfies(e -> {
                        assertEquals(Errno.ETIMEDOUT, ((UbdIoException) e).errno(), e.getMessage());
                        assertTrue(e.getMessage() == null || !e.getMessage().isEmpty());
                    })
                    .verify(WAIT);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 200, "failed after the timeout, not before: " + ms + " ms");
            StepVerifier.create(dev.write(0, 4096, Unpooled.wrappedBuffer(new byte[4096])))
                    .expectErrorSatisfies(e -> assertEquals(Errno.ETIMEDOUT, ((UbdIoException) e).errno()))
                    .verify(WAIT);
            // The other requests are served, and the stuck ones gave their tags back: all 4 tags work.
            for (int i = 0; i < 8; i++) {
                StepVerifier.create(dev.read(0, 8192, 4096))
                        .assertNext(ByteBuf::release)
                        .verifyComplete();
            }
            // The answer that comes too late is dropped and its buffer released.
            ByteBuf tooLate = PooledByteBufAllocator.DEFAULT.directBuffer(4096).writeZero(4096);
            late.get(0).success(tooLate);
            assertEquals(0, tooLate.refCnt(), "the late buffer was released");
        }
    }

    /**
     * A request answered by the timeout is over for its backend: the backend's Mono is cancelled, so that a retry, a
     * re-send after a reconnect or the rest of a transfer never reaches the store once the tag serves another request.
     * (Before, the Mono stayed subscribed and a retry went on writing after the answer.)
     */
    @Test
    void aTimedOutRequestCancelsTheBackendsMonoSoNothingOfItRunsAfterTheAnswer() throws Exception {
        AtomicInteger attempts = new AtomicInteger();
        CountDownLatch cancelled = new CountDownLatch(1);
        BlockBackend retrying = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return Mono.just(allocator.directBuffer(length).writeZero(length));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                // Each attempt fails after 100 ms and is tried again, as a retry decorator would.
                return Mono.defer(() -> {
                            attempts.incrementAndGet();
                            return Mono.<Void>error(new UbdIoException(Errno.EIO, "try again"))
                                    .delaySubscription(Duration.ofMillis(100));
                        })
                        .retry()
                        .doOnCancel(cancelled::countDown);
            }
        };
        try (VirtualDevice dev = VirtualDevice.serve(retrying, 1, 4, Duration.ofMillis(300))) {
            StepVerifier.create(dev.write(0, 4096, Unpooled.wrappedBuffer(new byte[4096])))
                    .expectErrorSatisfies(e -> assertEquals(Errno.ETIMEDOUT, ((UbdIoException) e).errno()))
                    .verify(WAIT);
            assertTrue(cancelled.await(5, TimeUnit.SECONDS), "the backend's Mono was cancelled with the answer");
            int atAnswer = attempts.get();
            Thread.sleep(500);
            assertEquals(atAnswer, attempts.get(), "no attempt after the request was answered");
        }
    }

    @Test
    void eachKindOfMisbehaviourFailsThatRequestAlone() {
        Misbehaving backend = new Misbehaving();
        try (VirtualDevice dev = VirtualDevice.serve(backend, 1, 8)) {
            expectErrno(dev.read(0, 0, 4096), Errno.EIO);
            expectErrno(dev.read(0, 4096, 4096), Errno.EIO);
            expectErrno(dev.read(0, 8192, 4096), Errno.EIO);
            expectErrno(dev.read(0, 12288, 4096), Errno.ENOSPC);
            expectErrno(dev.write(0, 0, Unpooled.wrappedBuffer(new byte[512])), Errno.EIO);
            // Discard is not among its capabilities: the default answers EOPNOTSUPP.
            expectErrno(dev.discard(0, 0, 4096), Errno.EOPNOTSUPP);
            // And the device goes on serving.
            StepVerifier.create(dev.read(0, 16384, 4096).doOnNext(ByteBuf::release))
                    .expectNextCount(1)
                    .verifyComplete();
            StepVerifier.create(dev.flush(0)).verifyComplete();
            assertEquals(6, dev.queue(0).failedCount());
            assertEquals(2, dev.queue(0).completedCount());
        }
    }

    @Test
    void aBufferReleasedTwiceFailsThatRequestAloneAndLeaksNothing() {
        UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);
        BlockBackend careless = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                ByteBuf b = allocator.directBuffer(length).writeZero(length);
                if (offset == 0) {
                    b.release(); // released before it is handed over: the bridge must not copy from it
                }
                return Mono.just(b);
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                if (offset == 0) {
                    data.release(); // the queue owns the data and releases it after the answer: a second release
                }
                return Mono.empty();
            }

            @Override
            public ByteBufAllocator allocator() {
                return alloc;
            }
        };
        try (VirtualDevice dev = VirtualDevice.serve(careless, 1, 8)) {
            expectErrno(dev.read(0, 0, 4096), Errno.EIO);
            ByteBuf data = alloc.directBuffer(4096).writeZero(4096);
            // Whatever this write's answer, the double release must not escape, and the device goes on serving.
            dev.write(0, 0, data).onErrorResume(e -> Mono.empty()).block(WAIT);
            data.release(); // the test kit's caller keeps its buffer
            StepVerifier.create(dev.read(0, 4096, 4096).doOnNext(ByteBuf::release))
                    .expectNextCount(1)
                    .verifyComplete();
            ByteBuf more = alloc.directBuffer(4096).writeZero(4096);
            StepVerifier.create(dev.write(0, 4096, more)).verifyComplete();
            more.release();
            assertEquals(0, dev.queue(0).inFlightCount());
        }
        assertEquals(0, alloc.metric().usedDirectMemory(), "no request buffer leaked");
    }

    @Test
    void memoryFollowsInFlightIoNotDepth() {
        Misbehaving backend = new Misbehaving();
        try (VirtualDevice dev = VirtualDevice.serve(backend, 2, 128)) {
            assertEquals(0, backend.alloc.metric().usedDirectMemory(), "nothing allocated ahead of time");
            StepVerifier.create(Flux.range(1, 500)
                            .flatMap(
                                    i -> i % 2 == 0
                                            ? dev.write(i % 2, 4096L * i, Unpooled.wrappedBuffer(new byte[4096]))
                                            : dev.read(i % 2, 4096L * (i + 4), 4096)
                                                    .doOnNext(ByteBuf::release)
                                                    .then(),
                                    32)
                            .then())
                    .verifyComplete();
            assertEquals(0, backend.alloc.metric().usedDirectMemory(), "every request buffer was released");
        }
    }

    @Test
    void aQueueThatEndedKeepsNothingOfItsBackend() throws Exception {
        // A closed device's handle keeps its queues; its backend (a RAM disk's data, say) must not stay reachable
        // through them: Reactor's unicast sink keeps its subscriber after the end, so the bridge lets go instead.
        Misbehaving backend = new Misbehaving();
        WeakReference<BlockBackend> ref = new WeakReference<>(backend);
        VirtualDevice dev = VirtualDevice.serve(backend, 2, 8);
        backend = null;
        dev.read(1, 65536, 4096).doOnNext(ByteBuf::release).then().block(WAIT);
        dev.close();
        for (int i = 0; i < 100 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertNull(ref.get(), "the backend is still reachable from the ended queues");
        assertEquals(2, dev.queues().size(), "the handle still holds its queues");
    }

    @Test
    void capabilitiesCompleteTheSpec() {
        DeviceSpec spec = DeviceSpec.builder()
                .capacityBytes(1 << 30)
                .physicalBlockSize(4096)
                .build();
        DeviceSpec full = UbdServer.withCapabilities(spec, EnumSet.allOf(BlockBackend.Capability.class));
        assertTrue(full.volatileCache() && full.fua());
        assertEquals(new DeviceSpec.Discard(4096, 0, 1 << 30, 1 << 30), full.discard());
        DeviceSpec none = UbdServer.withCapabilities(spec, EnumSet.noneOf(BlockBackend.Capability.class));
        assertTrue(!none.volatileCache() && !none.fua());
        assertNull(none.discard());
    }

    @Test
    void aBackendThatBlocksOnTheQueueLoopIsCaught() {
        // Proves that "no blocking call on an event loop" is checked for real: queue loops are Netty threads,
        // which BlockHound treats as non-blocking.
        BlockBackend sleepy = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return Mono.just(allocator.directBuffer(length).writeZero(length));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.empty();
            }
        };
        try (VirtualDevice dev = VirtualDevice.serve(sleepy, 1, 4)) {
            String loop = dev.queue(0)
                    .loop()
                    .submit(() -> Thread.currentThread().getName())
                    .syncUninterruptibly()
                    .getNow();
            expectErrno(dev.read(0, 0, 4096), Errno.EIO);
            assertTrue(
                    BlockingCallRecorder.callsOn(loop).stream().anyMatch(c -> c.contains("sleep")),
                    BlockingCallRecorder.calls().toString());
        }
    }

    private static void expectErrno(Mono<?> m, int errno) {
        StepVerifier.create(m)
                .expectErrorSatisfies(e -> assertEquals(errno, ((UbdIoException) e).errno(), e.getMessage()))
                .verify(WAIT);
    }
}

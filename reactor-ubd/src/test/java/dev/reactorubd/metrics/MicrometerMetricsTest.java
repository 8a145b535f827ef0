package dev.reactorubd.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.IoRequest;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.distribution.CountAtBucket;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.reactivestreams.Subscription;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/** The Micrometer meters of queues agree with the requests made, through the test kit's virtual device. */
class MicrometerMetricsTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final long FAIL_READS_AT = 1 << 20;
    private static final long FAIL_WRITES_AT = 2 << 20;

    /** Zeros for reads; ENOSPC for reads at 1 MiB and beyond; EIO (untyped) for writes at 2 MiB and beyond. */
    static final class Backend implements BlockBackend {
        final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            if (offset >= FAIL_READS_AT) {
                return Mono.error(new UbdIoException(Errno.ENOSPC, "test"));
            }
            // From another thread, so that requests overlap.
            return Mono.fromSupplier(() -> allocator.directBuffer(length).writeZero(length))
                    .subscribeOn(Schedulers.parallel());
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return offset >= FAIL_WRITES_AT ? Mono.error(new RuntimeException("untyped")) : Mono.empty();
        }

        @Override
        public Mono<Void> flush() {
            return Mono.empty();
        }

        @Override
        public Set<Capability> capabilities() {
            return EnumSet.of(Capability.FLUSH);
        }

        @Override
        public ByteBufAllocator allocator() {
            return alloc;
        }
    }

    private static double count(MeterRegistry r, String name, String... tags) {
        return r.find(name).tags(tags).counters().stream()
                .mapToDouble(Counter::count)
                .sum();
    }

    private static long timed(MeterRegistry r, String... tags) {
        return r.find(MicrometerMetrics.LATENCY).tags(tags).timers().stream()
                .mapToLong(Timer::count)
                .sum();
    }

    /** Per queue (tag {@code queue}): each queue's counts are its own. */
    @Test
    void countsAgreeWithTheRequestsMade() {
        MeterRegistry registry = new SimpleMeterRegistry();
        ByteBuf data = Unpooled.directBuffer(8192).writeZero(8192);
        try (VirtualDevice dev = VirtualDevice.serve(
                new Backend(),
                2,
                16,
                Duration.ofSeconds(30),
                MicrometerMetrics.builder(registry).perQueue(true).build())) {
            Flux.range(0, 100)
                    .flatMap(i -> dev.read(i % 2, i * 4096L, 4096).doOnNext(ByteBuf::release), 32)
                    .then()
                    .block(WAIT);
            Flux.range(0, 30)
                    .flatMap(i -> dev.write(i % 2, i * 8192L, data.duplicate()), 32)
                    .then()
                    .block(WAIT);
            dev.flush(1).block(WAIT);
            for (int i = 0; i < 3; i++) {
                long offset = FAIL_READS_AT + i * 4096L;
                UbdIoException e = assertThrows(
                        UbdIoException.class, () -> dev.read(0, offset, 4096).block(WAIT));
                assertEquals(Errno.ENOSPC, e.errno());
            }
            for (int i = 0; i < 2; i++) {
                long offset = FAIL_WRITES_AT + i * 8192L;
                assertThrows(
                        UbdIoException.class,
                        () -> dev.write(1, offset, data.duplicate()).block(WAIT));
            }

            assertEquals(103, count(registry, MicrometerMetrics.REQUESTS, "op", "READ"));
            assertEquals(32, count(registry, MicrometerMetrics.REQUESTS, "op", "WRITE"));
            assertEquals(1, count(registry, MicrometerMetrics.REQUESTS, "op", "FLUSH", "queue", "1"));
            assertEquals(
                    53,
                    count(registry, MicrometerMetrics.REQUESTS, "op", "READ", "queue", "0"),
                    "50 good and 3 failed reads on queue 0");
            assertEquals(100 * 4096, count(registry, MicrometerMetrics.DATA, "op", "READ"), "bytes of good reads");
            assertEquals(30 * 8192, count(registry, MicrometerMetrics.DATA, "op", "WRITE"), "bytes of good writes");
            assertEquals(103, timed(registry, "op", "READ"), "every read timed");
            assertEquals(103 + 32 + 1, timed(registry), "every request timed");
            assertEquals(3, count(registry, MicrometerMetrics.ERRORS, "op", "READ", "errno", "ENOSPC"));
            assertEquals(2, count(registry, MicrometerMetrics.ERRORS, "op", "WRITE", "errno", "EIO"));
            assertEquals(5, count(registry, MicrometerMetrics.ERRORS));
            Timer reads = registry.find(MicrometerMetrics.LATENCY)
                    .tags("op", "READ", "queue", "0", "device", "-1")
                    .timer();
            assertNotNull(reads);
            assertTrue(reads.max(TimeUnit.NANOSECONDS) > 0, "latency measured");
            assertEquals(
                    0,
                    registry.get(MicrometerMetrics.IN_FLIGHT)
                            .tags("queue", "0")
                            .gauge()
                            .value());
        }
        assertNull(registry.find(MicrometerMetrics.REQUESTS).meter(), "close() removed the meters");
        assertEquals(List.of(), registry.getMeters());
        data.release();
    }

    /** By default the queues of a device share its meters: no queue tag, counts and gauges summed over the queues. */
    @Test
    void byDefaultTheQueuesOfADeviceShareItsMeters() {
        MeterRegistry registry = new SimpleMeterRegistry();
        try (VirtualDevice dev = VirtualDevice.serve(new Backend(), 2, 16, registry)) {
            Flux.range(0, 40)
                    .flatMap(i -> dev.read(i % 2, i * 4096L, 4096).doOnNext(ByteBuf::release), 8)
                    .then()
                    .block(WAIT);
            List<Counter> reads = registry.find(MicrometerMetrics.REQUESTS).tags("op", "READ").counters().stream()
                    .toList();
            assertEquals(1, reads.size(), "one READ counter for the device's two queues: " + reads);
            assertEquals(40, reads.get(0).count());
            assertNull(reads.get(0).getId().getTag("queue"), "no queue tag");
            assertEquals("-1", reads.get(0).getId().getTag("device"));
            assertEquals(1, registry.find(MicrometerMetrics.IN_FLIGHT).gauges().size(), "one gauge a device");
            assertEquals(0, registry.get(MicrometerMetrics.IN_FLIGHT).gauge().value());
        }
        assertEquals(List.of(), registry.getMeters(), "closing the device removed its meters");
    }

    /** The latency histogram resolves microseconds: its buckets run from 5 µs to 30 s. */
    @Test
    void latencyBucketsResolveMicroseconds() {
        MeterRegistry registry = new SimpleMeterRegistry();
        MicrometerMetrics metrics = MicrometerMetrics.of(registry);
        QueueView view = new QueueView() {
            @Override
            public int deviceId() {
                return 7;
            }

            @Override
            public int id() {
                return 0;
            }

            @Override
            public int inFlightCount() {
                return 0;
            }

            @Override
            public int waitingForDemand() {
                return 0;
            }
        };
        QueueMetrics q = metrics.forQueue(view);
        q.completed(IoOp.READ, 4096, TimeUnit.MICROSECONDS.toNanos(30));
        q.completed(IoOp.READ, 4096, TimeUnit.MICROSECONDS.toNanos(300));
        q.completed(IoOp.READ, 4096, TimeUnit.MILLISECONDS.toNanos(3));
        var buckets = registry.get(MicrometerMetrics.LATENCY)
                .tags("op", "READ", "device", "7")
                .timer()
                .takeSnapshot()
                .histogramCounts();
        assertEquals(MicrometerMetrics.DEFAULT_LATENCY_BUCKETS.size(), buckets.length);
        assertEquals(5_000, buckets[0].bucket(TimeUnit.NANOSECONDS), 0.5, "the lowest bound is 5 µs");
        assertEquals(30, buckets[buckets.length - 1].bucket(TimeUnit.SECONDS), 1e-9, "the highest is 30 s");
        // Cumulative counts: none at or below 20 µs, one at 50 µs, two at 500 µs, three at 5 ms.
        assertEquals(0, countAt(buckets, 20));
        assertEquals(1, countAt(buckets, 50));
        assertEquals(2, countAt(buckets, 500));
        assertEquals(3, countAt(buckets, 5_000));
        q.close();
        assertEquals(List.of(), registry.getMeters());
    }

    private static double countAt(CountAtBucket[] buckets, long micros) {
        for (var b : buckets) {
            if (Math.round(b.bucket(TimeUnit.MICROSECONDS)) == micros) {
                return b.count();
            }
        }
        throw new AssertionError("no bucket at " + micros + " µs");
    }

    @Test
    void aLatencyBucketMustBePositive() {
        assertThrows(
                IllegalArgumentException.class,
                () -> MicrometerMetrics.builder(new SimpleMeterRegistry()).latencyBuckets(List.of(Duration.ZERO)));
    }

    /** The gauges: requests the queue holds, and those among them waiting for the subscriber's demand. */
    @Test
    void inFlightAndWaitingForDemand() {
        MeterRegistry registry = new SimpleMeterRegistry();
        try (VirtualDevice dev =
                VirtualDevice.create(1, 8, UnpooledByteBufAllocator.DEFAULT, MicrometerMetrics.of(registry))) {
            List<IoRequest> received = new CopyOnWriteArrayList<>();
            BaseSubscriber<IoRequest> consumer = new BaseSubscriber<>() {
                @Override
                protected void hookOnSubscribe(Subscription s) {
                    s.request(2);
                }

                @Override
                protected void hookOnNext(IoRequest r) {
                    received.add(r);
                }
            };
            dev.queue(0).requests().subscribe(consumer);
            List<Mono<ByteBuf>> reads = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                Mono<ByteBuf> read = dev.read(0, i * 512L, 512).cache();
                read.subscribe(ByteBuf::release, e -> {});
                reads.add(read);
            }
            awaitTrue(() -> dev.inFlight(0) == 5 && received.size() == 2);
            double inFlight = registry.get(MicrometerMetrics.IN_FLIGHT).gauge().value();
            double waiting = registry.get(MicrometerMetrics.WAITING).gauge().value();
            assertEquals(5, inFlight, "requests the queue holds");
            assertEquals(3, waiting, "requests beyond the subscriber's demand of 2");

            consumer.request(10);
            awaitTrue(() -> received.size() == 5);
            assertEquals(0, registry.get(MicrometerMetrics.WAITING).gauge().value());
            received.forEach(r -> r.complete(Unpooled.directBuffer(512).writeZero(512)));
            Flux.merge(reads).then().block(WAIT);
            awaitTrue(() -> registry.get(MicrometerMetrics.IN_FLIGHT).gauge().value() == 0);
            assertEquals(5, count(registry, MicrometerMetrics.REQUESTS, "op", "READ"));
            consumer.dispose();
        }
    }

    private static void awaitTrue(BooleanSupplier condition) {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("condition not met within " + WAIT);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }
}

package dev.reactorubd.metrics;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * {@link UbdMetrics} into a Micrometer {@link MeterRegistry}. Needs {@code io.micrometer:micrometer-core} on the
 * class path (an optional dependency of reactor-ubd); only this class and its queue recorder refer to Micrometer.
 *
 * <h2>Meters</h2>
 * Every meter has the tag {@code device} (the id N of {@code /dev/ublkbN}; -1 on a test kit device), and with
 * {@link Builder#perQueue} the tag {@code queue} too: by default the queues of a device share its meters, which
 * keeps the series count in proportion to the devices (docs/metrics.md counts them).
 * <ul>
 *   <li>{@value #REQUESTS} (counter, tag {@code op}): requests committed, failed ones included;</li>
 *   <li>{@value #DATA} (counter, base unit bytes, tag {@code op}): bytes of the requests that succeeded;</li>
 *   <li>{@value #LATENCY} (timer, tag {@code op}): from the kernel handing the request over (fetch completion) to
 *       the commit of its result, with histogram buckets at {@link #DEFAULT_LATENCY_BUCKETS} (5 µs to 30 s) unless
 *       {@link Builder#latencyBuckets} names others;</li>
 *   <li>{@value #ERRORS} (counter, tags {@code op}, {@code errno} such as {@code EIO}): failed requests;</li>
 *   <li>{@value #IN_FLIGHT} (gauge): requests the queue holds, from fetch to commit;</li>
 *   <li>{@value #WAITING} (gauge): requests waiting for the subscriber's demand.</li>
 * </ul>
 * READ and WRITE meters are registered with the first queue; other operations' and errors' meters on first use. The
 * meters are removed from the registry when the last queue that shares them is closed (device ids are reused).
 *
 * <h2>Threading</h2>
 * Recording happens on each queue's event loop, without locks or allocation once the meters exist; the gauges are
 * sampled by the registry from its own threads.
 */
public final class MicrometerMetrics implements UbdMetrics {
    /** Counter of requests answered, tagged device (and queue) and op. */
    public static final String REQUESTS = "ubd.requests";
    /** Counter of bytes moved by successful requests (base unit bytes), tagged device (and queue) and op. */
    public static final String DATA = "ubd.data";
    /** Timer from a request's fetch to its commit, with histogram buckets, tagged device (and queue) and op. */
    public static final String LATENCY = "ubd.latency";
    /** Counter of failed requests, tagged device (and queue), op and errno. */
    public static final String ERRORS = "ubd.errors";
    /** Gauge of requests in flight, tagged device (and queue). */
    public static final String IN_FLIGHT = "ubd.inflight";
    /** Gauge of requests waiting for the subscriber's demand, tagged device (and queue). */
    public static final String WAITING = "ubd.waiting";

    /**
     * The latency histogram's bucket bounds unless told otherwise: 1-2-5 steps from 5 µs to 30 s, so that a device
     * answering in microseconds and one answering in seconds both show where their requests fall.
     */
    public static final List<Duration> DEFAULT_LATENCY_BUCKETS = List.of(
            Duration.ofNanos(5_000),
            Duration.ofNanos(10_000),
            Duration.ofNanos(20_000),
            Duration.ofNanos(50_000),
            Duration.ofNanos(100_000),
            Duration.ofNanos(200_000),
            Duration.ofNanos(500_000),
            Duration.ofMillis(1),
            Duration.ofMillis(2),
            Duration.ofMillis(5),
            Duration.ofMillis(10),
            Duration.ofMillis(20),
            Duration.ofMillis(50),
            Duration.ofMillis(100),
            Duration.ofMillis(200),
            Duration.ofMillis(500),
            Duration.ofSeconds(1),
            Duration.ofSeconds(2),
            Duration.ofSeconds(5),
            Duration.ofSeconds(10),
            Duration.ofSeconds(30));

    private final MeterRegistry registry;
    private final boolean perQueue;
    private final Duration[] buckets;
    /** Per device (unless per queue): the meters its queues share. Guarded by itself. */
    private final Map<Integer, Meters> devices = new HashMap<>();

    private MicrometerMetrics(Builder b) {
        this.registry = b.registry;
        this.perQueue = b.perQueue;
        this.buckets = b.buckets.toArray(Duration[]::new);
    }

    /**
     * Metrics recorded into {@code registry}: per device, with the default latency buckets.
     *
     * @param registry where the meters go
     * @return the metrics, to hand to {@code UbdServer.builder().metrics(...)}
     */
    public static MicrometerMetrics of(MeterRegistry registry) {
        return builder(registry).build();
    }

    /**
     * A builder of metrics recorded into {@code registry}.
     *
     * @param registry where the meters go
     * @return the builder
     */
    public static Builder builder(MeterRegistry registry) {
        return new Builder(registry);
    }

    /**
     * The registry recorded into.
     *
     * @return the registry
     */
    public MeterRegistry registry() {
        return registry;
    }

    @Override
    public QueueMetrics forQueue(QueueView queue) {
        if (perQueue) {
            Meters m = new Meters(
                    registry,
                    Tags.of("device", Integer.toString(queue.deviceId()), "queue", Integer.toString(queue.id())),
                    buckets);
            m.views.add(queue);
            return new QueueMeters(m, queue, () -> m.close());
        }
        synchronized (devices) {
            Meters m = devices.get(queue.deviceId());
            if (m == null) {
                m = new Meters(registry, Tags.of("device", Integer.toString(queue.deviceId())), buckets);
                devices.put(queue.deviceId(), m);
            }
            m.views.add(queue);
            Meters shared = m;
            return new QueueMeters(m, queue, () -> {
                synchronized (devices) {
                    shared.views.remove(queue);
                    if (shared.views.isEmpty()) {
                        devices.remove(queue.deviceId(), shared);
                        shared.close();
                    }
                }
            });
        }
    }

    /** How the meters are cut and bucketed. */
    public static final class Builder {
        private final MeterRegistry registry;
        private boolean perQueue;
        private List<Duration> buckets = DEFAULT_LATENCY_BUCKETS;

        private Builder(MeterRegistry registry) {
            this.registry = Objects.requireNonNull(registry, "registry");
        }

        /**
         * Meters per queue (tag {@code queue}) instead of per device: as many more series as a device has queues.
         *
         * @param perQueue whether each queue has meters of its own
         * @return this builder
         */
        public Builder perQueue(boolean perQueue) {
            this.perQueue = perQueue;
            return this;
        }

        /**
         * The latency histogram's bucket bounds, in place of {@link #DEFAULT_LATENCY_BUCKETS}; none for no histogram
         * (count, total and max only).
         *
         * @param bounds the upper bounds of the buckets, each positive
         * @return this builder
         * @throws IllegalArgumentException for a bound that is not positive
         */
        public Builder latencyBuckets(List<Duration> bounds) {
            for (Duration d : bounds) {
                if (d.isNegative() || d.isZero()) {
                    throw new IllegalArgumentException("latency bucket bounds must be positive, not " + d);
                }
            }
            this.buckets = List.copyOf(bounds);
            return this;
        }

        /** {@return the metrics} */
        public MicrometerMetrics build() {
            return new MicrometerMetrics(this);
        }
    }

    /** What one queue records into: the meters it shares with its device's other queues, or its own. */
    private static final class QueueMeters implements QueueMetrics {
        private final Meters meters;
        private final Runnable onClose;
        private boolean closed;

        QueueMeters(Meters meters, QueueView queue, Runnable onClose) {
            this.meters = meters;
            this.onClose = onClose;
        }

        @Override
        public void completed(IoOp op, int bytes, long latencyNanos) {
            meters.completed(op, bytes, latencyNanos);
        }

        @Override
        public void failed(IoOp op, int errno, long latencyNanos) {
            meters.failed(op, errno, latencyNanos);
        }

        @Override
        public synchronized void close() {
            if (!closed) {
                closed = true;
                onClose.run();
            }
        }
    }

    /**
     * The meters of one tag set (a device, or a queue). Recording may come from several queue loops at once:
     * Micrometer's meters are thread-safe, and a meter made on first use by two loops at once is the same meter,
     * since the registry answers the second registration with the first.
     */
    private static final class Meters {
        private static final IoOp[] OPS = IoOp.values();
        private static final int MAX_ERRNO = 256;
        private final MeterRegistry registry;
        private final Tags tags;
        private final Duration[] buckets;
        private final List<QueueView> views = new CopyOnWriteArrayList<>();
        private final Counter[] requests = new Counter[OPS.length];
        private final Counter[] data = new Counter[OPS.length];
        private final Timer[] latency = new Timer[OPS.length];
        private final Counter[] errors = new Counter[OPS.length * (MAX_ERRNO + 1)];
        private final List<Meter> meters = new ArrayList<>();
        private boolean closed;

        Meters(MeterRegistry registry, Tags tags, Duration[] buckets) {
            this.registry = registry;
            this.tags = tags;
            this.buckets = buckets;
            synchronized (meters) {
                meters.add(Gauge.builder(IN_FLIGHT, views, Meters::inFlight)
                        .tags(tags)
                        .description("requests the queues hold, from fetch to commit")
                        .register(registry));
                meters.add(Gauge.builder(WAITING, views, Meters::waiting)
                        .tags(tags)
                        .description("requests waiting for the subscriber's demand")
                        .register(registry));
            }
            opMeters(IoOp.READ);
            opMeters(IoOp.WRITE);
        }

        private static double inFlight(List<QueueView> views) {
            return views.stream().mapToInt(QueueView::inFlightCount).sum();
        }

        private static double waiting(List<QueueView> views) {
            return views.stream().mapToInt(QueueView::waitingForDemand).sum();
        }

        private void opMeters(IoOp op) {
            Tags t = tags.and("op", op.name());
            Counter r = Counter.builder(REQUESTS)
                    .tags(t)
                    .description("requests committed")
                    .register(registry);
            Counter d = Counter.builder(DATA)
                    .baseUnit("bytes")
                    .tags(t)
                    .description("bytes of successful requests")
                    .register(registry);
            Timer l = Timer.builder(LATENCY)
                    .tags(t)
                    .serviceLevelObjectives(buckets)
                    .description("from fetch completion to commit")
                    .register(registry);
            synchronized (meters) {
                meters.add(r);
                meters.add(d);
                meters.add(l);
            }
            int o = op.ordinal();
            requests[o] = r;
            data[o] = d;
            latency[o] = l;
        }

        void completed(IoOp op, int bytes, long latencyNanos) {
            int o = op.ordinal();
            if (requests[o] == null) {
                opMeters(op);
            }
            requests[o].increment();
            if (bytes > 0) {
                data[o].increment(bytes);
            }
            latency[o].record(latencyNanos, TimeUnit.NANOSECONDS);
        }

        void failed(IoOp op, int errno, long latencyNanos) {
            int o = op.ordinal();
            if (requests[o] == null) {
                opMeters(op);
            }
            requests[o].increment();
            latency[o].record(latencyNanos, TimeUnit.NANOSECONDS);
            int e = errno > 0 && errno < MAX_ERRNO ? errno : MAX_ERRNO;
            int i = o * (MAX_ERRNO + 1) + e;
            Counter c = errors[i];
            if (c == null) {
                c = Counter.builder(ERRORS)
                        .tags(tags)
                        .tag("op", op.name())
                        .tag("errno", Errno.name(errno))
                        .description("failed requests")
                        .register(registry);
                synchronized (meters) {
                    meters.add(c);
                }
                errors[i] = c;
            }
            c.increment();
        }

        void close() {
            synchronized (meters) {
                if (closed) {
                    return;
                }
                closed = true;
                meters.forEach(registry::remove);
                meters.clear();
            }
        }
    }
}

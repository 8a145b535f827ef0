package dev.reactorubd.metrics;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * {@link UbdMetrics} into a Micrometer {@link MeterRegistry}. Needs {@code io.micrometer:micrometer-core} on the
 * class path (an optional dependency of reactor-ubd); only this class and its queue recorder refer to Micrometer.
 *
 * <h2>Meters</h2>
 * Every meter has the tags {@code device} (the id N of {@code /dev/ublkbN}; -1 on a test kit device) and
 * {@code queue}:
 * <ul>
 *   <li>{@value #REQUESTS} (counter, tag {@code op}): requests committed, failed ones included;</li>
 *   <li>{@value #DATA} (counter, base unit bytes, tag {@code op}): bytes of the requests that succeeded;</li>
 *   <li>{@value #LATENCY} (timer with a percentile histogram, tag {@code op}): from the kernel handing the request
 *       over (fetch completion) to the commit of its result;</li>
 *   <li>{@value #ERRORS} (counter, tags {@code op}, {@code errno} such as {@code EIO}): failed requests;</li>
 *   <li>{@value #IN_FLIGHT} (gauge): requests the queue holds, from fetch to commit;</li>
 *   <li>{@value #WAITING} (gauge): requests waiting for the subscriber's demand.</li>
 * </ul>
 * READ and WRITE meters are registered with the queue; other operations' and errors' meters on first use. A queue's
 * meters are removed from the registry when its device is closed (device ids are reused).
 *
 * <h2>Threading</h2>
 * Recording happens on each queue's event loop, without locks or allocation once the meters exist; the gauges are
 * sampled by the registry from its own threads.
 */
public final class MicrometerMetrics implements UbdMetrics {
    /** Counter of requests answered, tagged device, queue and op. */
    public static final String REQUESTS = "ubd.requests";
    /** Counter of bytes moved by successful requests (base unit bytes), tagged device, queue and op. */
    public static final String DATA = "ubd.data";
    /** Timer from a request's fetch to its commit, with a percentile histogram, tagged device, queue and op. */
    public static final String LATENCY = "ubd.latency";
    /** Counter of failed requests, tagged device, queue, op and errno. */
    public static final String ERRORS = "ubd.errors";
    /** Gauge of requests in flight, tagged device and queue. */
    public static final String IN_FLIGHT = "ubd.inflight";
    /** Gauge of requests waiting for the subscriber's demand, tagged device and queue. */
    public static final String WAITING = "ubd.waiting";

    private final MeterRegistry registry;

    private MicrometerMetrics(MeterRegistry registry) {
        this.registry = Objects.requireNonNull(registry, "registry");
    }

    /**
     * Metrics recorded into {@code registry}.
     *
     * @param registry where the meters go
     * @return the metrics, to hand to {@code UbdServer.builder().metrics(...)}
     */
    public static MicrometerMetrics of(MeterRegistry registry) {
        return new MicrometerMetrics(registry);
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
        return new QueueMeters(registry, queue);
    }

    /** The meters of one queue; recording runs on the queue's loop only. */
    private static final class QueueMeters implements QueueMetrics {
        private static final IoOp[] OPS = IoOp.values();
        private static final int MAX_ERRNO = 256;
        private final MeterRegistry registry;
        private final Tags tags;
        private final Counter[] requests = new Counter[OPS.length];
        private final Counter[] data = new Counter[OPS.length];
        private final Timer[] latency = new Timer[OPS.length];
        private final Counter[] errors = new Counter[OPS.length * (MAX_ERRNO + 1)];
        private final List<Meter> meters = new ArrayList<>();
        private boolean closed;

        QueueMeters(MeterRegistry registry, QueueView queue) {
            this.registry = registry;
            this.tags = Tags.of("device", Integer.toString(queue.deviceId()), "queue", Integer.toString(queue.id()));
            synchronized (meters) {
                meters.add(Gauge.builder(IN_FLIGHT, queue, QueueView::inFlightCount)
                        .tags(tags)
                        .description("requests the queue holds, from fetch to commit")
                        .register(registry));
                meters.add(Gauge.builder(WAITING, queue, QueueView::waitingForDemand)
                        .tags(tags)
                        .description("requests waiting for the subscriber's demand")
                        .register(registry));
            }
            opMeters(IoOp.READ);
            opMeters(IoOp.WRITE);
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
                    .publishPercentileHistogram()
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

        @Override
        public void completed(IoOp op, int bytes, long latencyNanos) {
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

        @Override
        public void failed(IoOp op, int errno, long latencyNanos) {
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

        @Override
        public void close() {
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

package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.IoOp;
import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.metrics.QueueMetrics;
import dev.reactorubd.metrics.QueueView;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * How many Prometheus series the library's meters make, counted in a real scrape: per device by default, per queue
 * on request (docs/metrics.md quotes these counts).
 */
class MetricsSeriesCountTest {
    private static final int DEVICES = 1024;
    private static final int QUEUES = 2;

    private static QueueView view(int device, int queue) {
        return new QueueView() {
            @Override
            public int deviceId() {
                return device;
            }

            @Override
            public int id() {
                return queue;
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
    }

    /** Series in a scrape of {@code devices} devices of {@link #QUEUES} queues that read, write and flush. */
    private static long series(boolean perQueue, int devices, List<Duration> buckets) {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        MicrometerMetrics metrics = MicrometerMetrics.builder(registry)
                .perQueue(perQueue)
                .latencyBuckets(buckets)
                .build();
        List<QueueMetrics> queues = new ArrayList<>();
        for (int d = 0; d < devices; d++) {
            for (int q = 0; q < QUEUES; q++) {
                QueueMetrics m = metrics.forQueue(view(d, q));
                m.completed(IoOp.READ, 4096, 30_000);
                m.completed(IoOp.WRITE, 4096, 40_000);
                m.completed(IoOp.FLUSH, 0, 900_000);
                queues.add(m);
            }
        }
        long n = registry.scrape().lines().filter(l -> l.startsWith("ubd_")).count();
        System.out.println("Prometheus series of " + devices + " devices x " + QUEUES + " queues (read, write, flush), "
                + (perQueue ? "per queue" : "per device") + ", " + buckets.size() + " latency buckets: " + n);
        queues.forEach(QueueMetrics::close);
        assertEquals(List.of(), registry.getMeters(), "closing every queue removed every meter");
        return n;
    }

    @Test
    void perDeviceTheSeriesGrowWithTheDevicesAndPerQueueWithTheQueuesToo() {
        List<Duration> buckets = MicrometerMetrics.DEFAULT_LATENCY_BUCKETS;
        long one = series(false, 1, buckets);
        long many = series(false, DEVICES, buckets);
        assertEquals(one * DEVICES, many, "per device: the same series for every device");
        long perQueue = series(true, DEVICES, buckets);
        assertEquals(many * QUEUES, perQueue, "per queue: the device's series once for each queue");
    }

    @Test
    void withoutBucketsEachLatencyTimerIsCountSumAndMax() {
        long with = series(false, 1, MicrometerMetrics.DEFAULT_LATENCY_BUCKETS);
        long without = series(false, 1, List.of());
        // three operations' timers lose their bucket lines: one per bound and +Inf
        assertEquals(with - 3L * (MicrometerMetrics.DEFAULT_LATENCY_BUCKETS.size() + 1), without);
    }
}

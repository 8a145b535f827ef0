package dev.reactorubd.management;

import dev.reactorubd.IoOp;
import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.server.UbdDevice;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.distribution.CountAtBucket;
import io.micrometer.core.instrument.distribution.HistogramSnapshot;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;

/**
 * Live per-device statistics, sampled once a second from the devices' Micrometer meters ({@link MicrometerMetrics}):
 * IOPS and MB/s of reads and writes over the last period, requests in flight, p50 and p99 latency of the period's
 * requests (from the percentile histogram's buckets: the upper bound of the bucket the percentile falls in), and
 * totals since each device was created.
 *
 * <h2>Threading</h2>
 * One sampler for all subscribers ({@link #frames()} is shared while anyone listens), running on Reactor's parallel
 * scheduler; reading meters does not block.
 */
@Service
public class StatsService {
    /** The sampling period. */
    static final Duration PERIOD = Duration.ofSeconds(1);

    private final DeviceManager devices;
    private final MeterRegistry registry;
    private final Flux<StatsFrame> frames;
    /** Per device: the previous sample, to compute rates (touched by the sampler only). */
    private final Map<Integer, Sample> previous = new HashMap<>();

    public StatsService(DeviceManager devices) {
        this.devices = devices;
        this.registry = devices.registry();
        this.frames = Flux.interval(Duration.ZERO, PERIOD)
                .onBackpressureDrop()
                .map(t -> sample())
                .share();
    }

    /** A frame a second while subscribed; hot and shared. */
    public Flux<StatsFrame> frames() {
        return frames;
    }

    /** Cumulative counts of one device at one time. */
    private record Sample(
            long nanos,
            long reads,
            long writes,
            long others,
            long errors,
            long readBytes,
            long writtenBytes,
            long timed,
            TreeMap<Double, Long> buckets) {}

    private synchronized StatsFrame sample() {
        List<DeviceStats> out = new ArrayList<>();
        Map<Integer, Sample> now = new HashMap<>();
        for (UbdDevice d : devices.liveDevices()) {
            Sample s = take(d.id());
            now.put(d.id(), s);
            Sample p = previous.get(d.id());
            out.add(stats(d, s, p));
        }
        previous.clear();
        previous.putAll(now);
        return new StatsFrame(Instant.now(), out);
    }

    private Sample take(int id) {
        String dev = Integer.toString(id);
        long reads = count(MicrometerMetrics.REQUESTS, dev, IoOp.READ);
        long writes = count(MicrometerMetrics.REQUESTS, dev, IoOp.WRITE);
        long all = registry.find(MicrometerMetrics.REQUESTS).tag("device", dev).counters().stream()
                .mapToLong(c -> (long) c.count())
                .sum();
        long errors = registry.find(MicrometerMetrics.ERRORS).tag("device", dev).counters().stream()
                .mapToLong(c -> (long) c.count())
                .sum();
        TreeMap<Double, Long> buckets = new TreeMap<>();
        long timed = 0;
        for (Timer t :
                registry.find(MicrometerMetrics.LATENCY).tag("device", dev).timers()) {
            HistogramSnapshot h = t.takeSnapshot();
            timed += h.count();
            for (CountAtBucket b : h.histogramCounts()) {
                buckets.merge(b.bucket(), (long) b.count(), Long::sum);
            }
        }
        return new Sample(
                System.nanoTime(),
                reads,
                writes,
                all - reads - writes,
                errors,
                count(MicrometerMetrics.DATA, dev, IoOp.READ),
                count(MicrometerMetrics.DATA, dev, IoOp.WRITE),
                timed,
                buckets);
    }

    private long count(String name, String dev, IoOp op) {
        return (long) registry.find(name).tags("device", dev, "op", op.name()).counters().stream()
                .mapToDouble(Counter::count)
                .sum();
    }

    private static DeviceStats stats(UbdDevice d, Sample s, Sample p) {
        int inFlight = d.queues().stream().mapToInt(q -> q.inFlightCount()).sum();
        if (p == null) {
            return new DeviceStats(
                    d.id(),
                    0,
                    0,
                    0,
                    0,
                    inFlight,
                    null,
                    null,
                    s.reads,
                    s.writes,
                    s.others,
                    s.errors,
                    s.readBytes,
                    s.writtenBytes);
        }
        double secs = Math.max(1e-3, (s.nanos - p.nanos) / 1e9);
        long timed = s.timed - p.timed;
        return new DeviceStats(
                d.id(),
                (s.reads - p.reads) / secs,
                (s.writes - p.writes) / secs,
                (s.readBytes - p.readBytes) / secs / 1e6,
                (s.writtenBytes - p.writtenBytes) / secs / 1e6,
                inFlight,
                percentile(s, p, timed, 0.50),
                percentile(s, p, timed, 0.99),
                s.reads,
                s.writes,
                s.others,
                s.errors,
                s.readBytes,
                s.writtenBytes);
    }

    /** The upper bound (ms) of the histogram bucket where quantile {@code q} of the period's requests falls. */
    private static Double percentile(Sample s, Sample p, long timed, double q) {
        if (timed <= 0) {
            return null;
        }
        double rank = Math.ceil(q * timed);
        for (Map.Entry<Double, Long> e : s.buckets.entrySet()) {
            long delta = e.getValue() - p.buckets.getOrDefault(e.getKey(), 0L);
            if (delta >= rank) {
                return e.getKey() / 1e6;
            }
        }
        return s.buckets.isEmpty() ? null : s.buckets.lastKey() / 1e6;
    }
}

package dev.reactorubd.bench;

import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import dev.reactorubd.IoOp;
import dev.reactorubd.server.BackendBridge;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The library's own per-request cost, without a kernel: requests go through the real queue ({@code UbdQueue}),
 * bridge and backend on a queue event loop, driven by the test kit's {@link VirtualDevice#load}, which keeps every
 * tag busy (depth 128, as under a deep fio job) and allocates nothing per request itself. Scores are requests per
 * second; with {@code -prof gc}, {@code gc.alloc.rate.norm} divided by {@value #BATCH} is what a request allocates
 * (the per-invocation start and wait add a few hundred bytes to each invocation, under 0.1 B a request).
 * {@code metrics=on} records the queue's Micrometer meters (counters, a timer with a percentile histogram, gauges)
 * into a Prometheus registry, as the management service does; {@code off} is the library's default, no metrics.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class QueuePathBenchmark {
    static final int BATCH = 8192;
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final long SPAN = 64L << 20;

    @Param({"null", "memory"})
    public String target;

    @Param({"4096", "131072"})
    public int size;

    @Param({"off", "on"})
    public String metrics;

    private VirtualDevice dev;

    @Setup(Level.Trial)
    public void setUp() {
        UbdMetrics m = "on".equals(metrics)
                ? MicrometerMetrics.of(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT)) : UbdMetrics.NONE;
        dev = VirtualDevice.serve("null".equals(target) ? new NullBackend() : new MemoryBackend(1L << 30), 1, 128,
                BackendBridge.DEFAULT_REQUEST_TIMEOUT, m);
        // The memory target's pages exist before reads are measured: steady state, not first-touch allocation.
        check(dev.load(0, IoOp.WRITE, size, SPAN, SPAN / size).block(WAIT));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        dev.close();
    }

    private static long check(Long failed) {
        if (failed == null || failed != 0) {
            throw new IllegalStateException(failed + " requests failed");
        }
        return 0;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long read() {
        return check(dev.load(0, IoOp.READ, size, SPAN, BATCH).block(WAIT));
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long write() {
        return check(dev.load(0, IoOp.WRITE, size, SPAN, BATCH).block(WAIT));
    }
}

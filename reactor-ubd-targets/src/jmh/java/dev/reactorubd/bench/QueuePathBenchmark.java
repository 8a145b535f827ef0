package dev.reactorubd.bench;

import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
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
import reactor.core.publisher.Flux;

/**
 * The library's own per-request cost, without a kernel: requests go through the real queue ({@code UbdQueue}),
 * bridge and backend on a queue event loop, driven by the test kit's virtual device. {@code batch} requests are in
 * flight together (up to the depth), as under a deep fio job; scores are requests per second.
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
    private static final int BATCH = 256;
    private static final Duration WAIT = Duration.ofSeconds(30);

    @Param({"null", "memory"})
    public String target;

    @Param({"4096", "131072"})
    public int size;

    @Param({"off", "on"})
    public String metrics;

    private VirtualDevice dev;
    private ByteBuf data;

    @Setup(Level.Trial)
    public void setUp() {
        UbdMetrics m = "on".equals(metrics)
                ? MicrometerMetrics.of(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT)) : UbdMetrics.NONE;
        dev = VirtualDevice.serve("null".equals(target) ? new NullBackend() : new MemoryBackend(1L << 30), 1, 128, m);
        data = Unpooled.directBuffer(size).writeZero(size);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        dev.close();
        data.release();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long read() {
        return Flux.range(0, BATCH)
                .flatMap(i -> dev.read(0, (long) i * size, size).doOnNext(ByteBuf::release), 128)
                .count().block(WAIT);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long write() {
        return Flux.range(0, BATCH)
                .flatMap(i -> dev.write(0, (long) i * size, data.duplicate()), 128)
                .count().block(WAIT);
    }
}

package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.nio.file.ExtendedOpenOption;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.ProcessResources;
import dev.reactorubd.testing.Vm;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Scale and leaks ("nothing lost, nothing hangs"): one JVM serves 1,024 two-queue memory devices at once and fio
 * verifies 64 of them together; then 1,000 serve/IO/close cycles must leave the process's fds, mappings, threads,
 * heap and direct memory where they were. Figures are printed for the record.
 *
 * <p>Devices are added and closed by a few worker threads at once (blocking calls, off the server's loops), which
 * is how an application adding many devices would go about it, and fast enough under the VM's emulated CPU.
 */
@DeviceTest
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ScaleDeviceTest {
    private static final Duration WAIT = Devices.WAIT;
    private static final long MIB = 1 << 20;
    private static final int DEVICES = 1024;
    private static final int FIO_DEVICES = 64;
    private static final int CYCLES = 1000;
    private static final int WARM_UP_CYCLES = 50;
    /** Worker threads adding and closing devices at once. */
    private static final int WORKERS = 8;
    /** Capacity of each device: memory is allocated by the page on write, so only fio's few MiB cost anything. */
    private static final long CAPACITY = 32 * MIB;

    private static final int DEPTH = 32;
    /** What fio writes, then reads back and verifies, on each of its devices. */
    private static final long FIO_BYTES = 2 * MIB;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    private static DeviceSpec spec() {
        return DeviceSpec.builder()
                .capacityBytes(CAPACITY)
                .queues(2)
                .depth(DEPTH)
                .build();
    }

    @Test
    @Order(1)
    void aThousandAndTwentyFourDevicesTwoQueuesEachAndFioVerifiesSixtyFourAtOnce() throws Exception {
        UbdServer server = SERVER.get();
        ProcessResources before = ProcessResources.now();
        System.out.println("scale: before " + DEVICES + " devices: " + before.summary());
        System.out.println("scale: threads before: " + before.threadSummary());
        UbdDevice[] devices = new UbdDevice[DEVICES];
        long[] addNanos = new long[DEVICES];
        long t0 = System.nanoTime();
        try {
            inParallel(DEVICES, i -> {
                long s = System.nanoTime();
                devices[i] = server.serve(spec(), new MemoryBackend(CAPACITY)).block(WAIT);
                addNanos[i] = System.nanoTime() - s;
            });
            long addWall = System.nanoTime() - t0;
            ProcessResources serving = ProcessResources.now();
            System.out.println("scale: serving " + DEVICES + " devices: " + serving.summary());
            System.out.println("scale: threads while serving: " + serving.threadSummary());
            System.out.printf(
                    "scale: %d devices added and started in %.1f s by %d workers (%.1f/s); per add: %s%n",
                    DEVICES, addWall / 1e9, WORKERS, DEVICES / (addWall / 1e9), stats(addNanos));
            assertEquals(DEVICES, server.devices().size());
            assertEquals(
                    DEVICES,
                    Arrays.stream(devices)
                            .filter(d -> Files.exists(Path.of(d.blockDevicePath())))
                            .count(),
                    "block devices present");
            assertEquals(DEVICES, serving.ublkFds(), "one char device fd per device");
            assertEquals(2L * DEVICES, serving.ublkMaps(), "one descriptor mapping per queue");

            // fio: one process, one job per device, on 64 devices spread over the id range.
            StringBuilder jobs = new StringBuilder();
            List<UbdDevice> checked = new ArrayList<>();
            for (int k = 0; k < FIO_DEVICES; k++) {
                UbdDevice d = devices[k * (DEVICES / FIO_DEVICES) + k % (DEVICES / FIO_DEVICES)];
                checked.add(d);
                jobs.append(" --name=d").append(d.id()).append(" --filename=").append(d.blockDevicePath());
            }
            long f0 = System.nanoTime();
            // No disk statistics: fio would look each device up by walking /sys/block, all 1,024 of them, per job.
            Vm.Result fio = Vm.sh(
                    600,
                    "fio --output-format=terse --terse-version=3 --disk_util=0"
                            + " --ioengine=io_uring --direct=1"
                            + " --rw=randwrite --bsrange=4k-64k --iodepth=8 --size=" + FIO_BYTES
                            + " --verify=crc32c --do_verify=1"
                            + " --verify_fatal=1" + jobs);
            long fioNanos = System.nanoTime() - f0;
            assertEquals(0, fio.exitCode(), fio.output());
            // Terse v3: field 3 job name, 5 error, 6 read KiB (the verify pass reads back all that was written),
            // 47 write KiB.
            int ok = 0;
            long readKib = 0;
            long writeKib = 0;
            for (String line :
                    fio.output().lines().filter(l -> l.startsWith("3;")).toList()) {
                String[] f = line.split(";");
                if ("0".equals(f[4])) {
                    ok++;
                }
                readKib += Long.parseLong(f[5]);
                writeKib += Long.parseLong(f[46]);
            }
            System.out.printf(
                    "scale: fio verify=crc32c on %d devices at once in %.1f s: %d jobs with err=0,"
                            + " %d MiB written, %d MiB read back and verified%n",
                    FIO_DEVICES, fioNanos / 1e9, ok, writeKib >> 10, readKib >> 10);
            assertEquals(FIO_DEVICES, ok, fio.output());
            assertEquals(FIO_DEVICES * FIO_BYTES / 1024, writeKib, "every job wrote all of its range");
            assertEquals(writeKib, readKib, "every written block was read back and verified");
            for (UbdDevice d : checked) {
                assertEquals(
                        0, d.queues().stream().mapToLong(q -> q.failedCount()).sum(), "failed requests on " + d);
            }
        } finally {
            long[] closeNanos = new long[DEVICES];
            long c0 = System.nanoTime();
            inParallel(DEVICES, i -> {
                if (devices[i] != null) {
                    long s = System.nanoTime();
                    devices[i].close().block(WAIT);
                    closeNanos[i] = System.nanoTime() - s;
                }
            });
            long closeWall = System.nanoTime() - c0;
            System.out.printf(
                    "scale: %d devices stopped and deleted in %.1f s by %d workers; per delete: %s%n",
                    DEVICES, closeWall / 1e9, WORKERS, stats(closeNanos));
        }
        for (UbdDevice d : devices) {
            assertTrue(!Files.exists(Path.of(d.blockDevicePath())) && !Vm.deviceExists(d.id()), d + " is gone");
        }
        ProcessResources after = settled(null);
        System.out.println("scale: after deleting them all: " + after.summary());
        System.out.println("scale: threads after: " + after.threadSummary());
        assertEquals(0, after.ublkFds(), "ublk fds left");
        assertEquals(0, after.ublkMaps(), "ublk mappings left");
        assertEquals(
                before.fdKinds().getOrDefault("anon_inode:[io_uring]", 0L),
                after.fdKinds().getOrDefault("anon_inode:[io_uring]", 0L),
                "io_uring fds");
        assertEquals(before.uringMaps(), after.uringMaps(), "io_uring mappings");
        assertEquals(List.of(), server.control().listDevices().collectList().block(WAIT), "devices left");
        // The test still holds the 1,024 closed handles, as an application might: they keep their queues (a few KiB
        // each) but nothing of their backends, whose pages fio filled (64 x 2 MiB).
        assertTrue(
                after.heapUsed() - before.heapUsed() < 16 * MIB,
                "heap grew from " + before.heapUsed() + " to " + after.heapUsed());
    }

    @Test
    @Order(2)
    void aThousandServeAndCloseCyclesLeaveNothingBehind() throws Exception {
        UbdServer server = SERVER.get();
        ByteBuffer[] buffers = new ByteBuffer[WORKERS];
        for (int w = 0; w < WORKERS; w++) {
            // One aligned 4 KiB buffer per worker for O_DIRECT, allocated before the first snapshot.
            // Exactly 4096 bytes: an aligned slice keeps 8192 when the allocation happens to be aligned, and clear()
            // in writeAndReadBack would then move 8192.
            buffers[w] = ByteBuffer.allocateDirect(8192).alignedSlice(4096).slice(0, 4096);
        }
        ExecutorService pool = Executors.newFixedThreadPool(WORKERS, named());
        try {
            long[] warmAdd = new long[WARM_UP_CYCLES];
            long[] warmClose = new long[WARM_UP_CYCLES];
            cycles(pool, server, WARM_UP_CYCLES, buffers, warmAdd, warmClose);
            ProcessResources before = settled(null);
            System.out.println("scale: before " + CYCLES + " cycles (after " + WARM_UP_CYCLES + " to warm up): "
                    + before.summary());
            System.out.println("scale: threads before the cycles: " + before.threadSummary());
            long[] addNanos = new long[CYCLES];
            long[] closeNanos = new long[CYCLES];
            long t0 = System.nanoTime();
            cycles(pool, server, CYCLES, buffers, addNanos, closeNanos);
            long wall = System.nanoTime() - t0;
            ProcessResources after = settled(before);
            System.out.println("scale: after " + CYCLES + " cycles: " + after.summary());
            System.out.println("scale: threads after the cycles: " + after.threadSummary());
            System.out.printf(
                    "scale: %d cycles (serve, 4 KiB written and read back, close) in %.1f s by %d workers"
                            + " (%.1f cycles/s); per add: %s; per delete: %s%n",
                    CYCLES, wall / 1e9, WORKERS, CYCLES / (wall / 1e9), stats(addNanos), stats(closeNanos));
            assertEquals(List.of(), server.control().listDevices().collectList().block(WAIT), "devices left");
            assertEquals(0, after.ublkFds(), "ublk fds left");
            assertEquals(0, after.ublkMaps(), "ublk mappings left");
            // Every fd and mapping a cycle makes must go with it: after the warm-up (which opens the jars and
            // creates the pools a first cycle needs), the counts are exactly the same.
            assertEquals(before.fdKinds(), after.fdKinds(), "fds by kind");
            assertEquals(before.fds(), after.fds(), "open fds");
            assertEquals(before.uringMaps(), after.uringMaps(), "io_uring mappings");
            // Java's own mappings move a little (code cache, metaspace, malloc arenas, thread stacks of pool
            // workers come and go): 1,000 cycles that each leaked one mapping would be far beyond this bound.
            assertTrue(
                    Math.abs(after.maps() - before.maps()) <= 16, "mappings " + before.maps() + " -> " + after.maps());
            // Threads: the same Java threads, aside from those that idle out by design: Reactor's elastic workers
            // (after 60 s; a burst of control commands may start a few more, up to its cap of 10 per CPU) and the
            // JDK's "process reaper" (of the fio run before).
            assertEquals(withoutElastic(before), withoutElastic(after), "threads by kind (elastic workers aside)");
            // The kernel's io_uring workers: control commands run on the io-wq of the thread that submitted them, and
            // each io-wq keeps its last worker (per kind, bound and unbound) until its thread ends. So they follow
            // the submitting threads, which are the same but for elastic workers: no more than two per new elastic
            // worker once idle ones exited (settled() waits for that). A thread that so far had a worker of one kind
            // may also keep one of the other after a later command (seen once on 6.18: 15 -> 16 with no new elastic
            // worker): a few, not one per cycle, which is what a leak would be.
            long newElastic = Math.max(0, elastic(after) - elastic(before));
            assertTrue(
                    after.ioWorkers() <= before.ioWorkers() + 2 * newElastic + 4,
                    "io_uring workers " + before.ioWorkers() + " -> " + after.ioWorkers() + " with " + newElastic
                            + " new elastic workers");
            // Heap: 1,000 devices that each left a queue, a request array or a sink behind would hold several MiB.
            assertTrue(
                    after.heapUsed() - before.heapUsed() < 4 * MIB,
                    "heap grew from " + before.heapUsed() + " to " + after.heapUsed());
            // Direct memory: request buffers come from Netty's pool, whose chunks are reused once allocated.
            assertTrue(
                    after.directBytes() <= before.directBytes(),
                    "JDK direct memory " + before.directBytes() + " -> " + after.directBytes());
            assertTrue(
                    after.nettyDirect() <= before.nettyDirect(),
                    "Netty direct memory " + before.nettyDirect() + " -> " + after.nettyDirect());
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(30, TimeUnit.SECONDS);
        }
    }

    /** {@code n} cycles on the pool: serve, write and read back 4 KiB with O_DIRECT, close; timings in the arrays. */
    private static void cycles(
            ExecutorService pool, UbdServer server, int n, ByteBuffer[] buffers, long[] addNanos, long[] closeNanos)
            throws Exception {
        AtomicInteger next = new AtomicInteger();
        AtomicInteger worker = new AtomicInteger();
        List<Future<?>> futures = new ArrayList<>();
        for (int w = 0; w < WORKERS; w++) {
            futures.add(pool.submit(() -> {
                ByteBuffer buf = buffers[worker.getAndIncrement()];
                int i;
                while ((i = next.getAndIncrement()) < n) {
                    long s = System.nanoTime();
                    UbdDevice dev =
                            server.serve(spec(), new MemoryBackend(CAPACITY)).block(WAIT);
                    addNanos[i] = System.nanoTime() - s;
                    try {
                        writeAndReadBack(dev, buf, i);
                    } finally {
                        long c = System.nanoTime();
                        dev.close().block(WAIT);
                        closeNanos[i] = System.nanoTime() - c;
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : futures) {
            f.get(20, TimeUnit.MINUTES);
        }
    }

    private static void writeAndReadBack(UbdDevice dev, ByteBuffer buf, int cycle) throws IOException {
        long where = (cycle % (CAPACITY / 4096)) * 4096;
        try (FileChannel ch = FileChannel.open(
                Path.of(dev.blockDevicePath()),
                StandardOpenOption.READ,
                StandardOpenOption.WRITE,
                ExtendedOpenOption.DIRECT)) {
            buf.clear();
            while (buf.hasRemaining()) {
                buf.putInt(cycle ^ buf.position());
            }
            buf.flip();
            assertEquals(4096, ch.write(buf, where));
            buf.clear();
            for (int k = 0; k < 4096; k += 4) {
                buf.putInt(k, 0);
            }
            assertEquals(4096, ch.read(buf, where));
            for (int k = 0; k < 4096; k += 4) {
                assertEquals(cycle ^ k, buf.getInt(k), "word " + k + " of cycle " + cycle + " on " + dev);
            }
        }
    }

    /** Runs {@code body(i)} for i in [0, n) on {@link #WORKERS} threads; rethrows the first failure. */
    private static void inParallel(int n, IntConsumer body) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(WORKERS, named());
        try {
            AtomicInteger next = new AtomicInteger();
            ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
            List<Future<?>> futures = new ArrayList<>();
            for (int w = 0; w < WORKERS; w++) {
                futures.add(pool.submit(() -> {
                    int i;
                    while ((i = next.getAndIncrement()) < n) {
                        try {
                            body.accept(i);
                        } catch (Throwable t) {
                            errors.add(t);
                        }
                    }
                }));
            }
            for (Future<?> f : futures) {
                f.get(20, TimeUnit.MINUTES);
            }
            if (!errors.isEmpty()) {
                AssertionError e = new AssertionError(
                        errors.size() + " of " + n + " failed; the first: " + errors.peek(), errors.peek());
                errors.stream().skip(1).limit(5).forEach(e::addSuppressed);
                throw e;
            }
        } finally {
            pool.shutdown();
            pool.awaitTermination(60, TimeUnit.SECONDS);
        }
    }

    private static ThreadFactory named() {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, "scale-worker-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * A snapshot once the kernel's idle io_uring workers have exited (they linger a few seconds after their last
     * work): waits, up to 30 s, until there are no more of them than in {@code reference}.
     */
    private static ProcessResources settled(ProcessResources reference) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        ProcessResources r = ProcessResources.now();
        while (System.nanoTime() < deadline
                && (reference == null ? previousWorkersStillExiting(r) : r.ioWorkers() > reference.ioWorkers())) {
            Thread.sleep(1000);
            r = ProcessResources.now();
        }
        return r;
    }

    private static long lastWorkers = -1;

    /** Without a reference: waits until the io_uring worker count stops falling between two looks. */
    private static boolean previousWorkersStillExiting(ProcessResources r) {
        boolean falling = lastWorkers < 0 || r.ioWorkers() < lastWorkers;
        lastWorkers = falling ? r.ioWorkers() : -1;
        return falling;
    }

    private static long elastic(ProcessResources r) {
        return r.threadKinds().getOrDefault("boundedElastic-", 0L);
    }

    private static Map<String, Long> withoutElastic(ProcessResources r) {
        Map<String, Long> m = new TreeMap<>(r.threadKinds());
        m.remove("boundedElastic-");
        m.remove("process reaper");
        m.keySet().removeIf(k -> k.startsWith("iou-"));
        return m;
    }

    /** "mean X ms, p50 Y ms, p99 Z ms, max W ms" of the non-zero entries. */
    private static String stats(long[] nanos) {
        long[] v = Arrays.stream(nanos).filter(x -> x > 0).sorted().toArray();
        if (v.length == 0) {
            return "none";
        }
        double mean = Arrays.stream(v).average().orElse(0) / 1e6;
        return String.format(
                "n=%d mean %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                v.length,
                mean,
                v[v.length / 2] / 1e6,
                v[Math.min(v.length - 1, (int) Math.ceil(v.length * 0.99) - 1)] / 1e6,
                v[v.length - 1] / 1e6);
    }
}

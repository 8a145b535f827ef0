// The in-VM side of scripts/device-memory: what an idle device costs, in one JVM serving more and more of them.
//   java --enable-native-access=ALL-UNNAMED -XX:NativeMemoryTracking=summary -cp samples/target/ubd.jar:CLASSES \
//       DeviceMemory QUEUES COUNTS OUT_DIR [WARM_UP]
// COUNTS is a comma-separated list of device counts, ascending, starting with 1 (e.g. 1,256,1024). The program serves
// WARM_UP devices (default 128) and closes them again (so that class loading, the JIT's first compilations and Netty's
// buffer pools are behind it), then adds idle memory devices of QUEUES queues (default depth, 1 GiB, pages allocated
// on write only, so nothing is written and nothing of their capacity is allocated) one at a time, timing each add
// and start, and at each count takes a snapshot after full GCs: heap used, direct memory (the JDK's and Netty's),
// process RSS, threads, fds, mappings, and Native Memory Tracking's summary. At the end it closes every device, one at
// a time and the last added first, timing each, and takes a last snapshot. OUT_DIR gets snapshots.tsv (one line per
// count), times.tsv (one line per device: add+start and delete nanoseconds), nmt-N.txt and histo-N.txt (class
// histogram) per count, and per-device.txt: (value at N - value at 1) / (N - 1) per figure, NMT category and class.
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.internal.PlatformDependent;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.management.ObjectName;

public final class DeviceMemory {
    private static final long SIZE = 1L << 30;
    private static final Duration WAIT = Duration.ofMinutes(2);

    /**
     * One snapshot: named figures in bytes or counts. Its NMT summary and class histogram go to files, read back at the
     * end: held here, they would be on the heap measured next.
     */
    record Snapshot(int devices, Map<String, Long> figures) {}

    public static void main(String[] args) throws Exception {
        int queues = Integer.parseInt(args[0]);
        int[] counts = Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray();
        Path out = Path.of(args[2]);
        int warmUp = args.length > 3 ? Integer.parseInt(args[3]) : 128;
        if (counts[0] != 1) {
            throw new IllegalArgumentException("the first count must be 1: the figures are per device beyond it");
        }
        Files.createDirectories(out);
        int max = counts[counts.length - 1];
        DeviceSpec spec = DeviceSpec.builder().capacityBytes(SIZE).queues(queues).build();
        say("%d queue(s) of depth %d per device, %d MiB memory target (allocated on write), counts %s, warm-up %d",
                spec.queues(), spec.depth(), SIZE >> 20, Arrays.toString(counts), warmUp);
        List<Snapshot> snaps = new ArrayList<>();
        long[] addNanos = new long[max];
        long[] deleteNanos = new long[max];
        try (UbdServer server = UbdServer.create()) {
            for (int i = 0; i < warmUp; i++) {
                server.serve(spec, new MemoryBackend(SIZE)).block(WAIT).close().block(WAIT);
            }
            List<UbdDevice> devices = new ArrayList<>();
            int next = 0;
            for (int n = 0; n < max; n++) {
                long s = System.nanoTime();
                devices.add(server.serve(spec, new MemoryBackend(SIZE)).block(WAIT));
                addNanos[n] = System.nanoTime() - s;
                if (next < counts.length && n + 1 == counts[next]) {
                    Snapshot snap = snapshot(n + 1, out);
                    snaps.add(snap);
                    say("%d device(s): %s", n + 1, snap.figures());
                    next++;
                }
                if ((n + 1) % 128 == 0) {
                    say("%d devices served", n + 1);
                }
            }
            // Last in, first out: device n is deleted while n + 1 devices are served, as it was added.
            for (int n = max - 1; n >= 0; n--) {
                long s = System.nanoTime();
                devices.get(n).close().block(WAIT);
                deleteNanos[n] = System.nanoTime() - s;
            }
            devices.clear();
            Snapshot after = snapshot(0, out);
            say("after closing all: %s", after.figures());
            snaps.add(after);
        }
        write(out, queues, spec.depth(), snaps, addNanos, deleteNanos);
    }

    private static void say(String format, Object... args) {
        System.out.printf("device-memory: " + format + "%n", args);
    }

    private static Snapshot snapshot(int devices, Path out) throws Exception {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(200);
        }
        Map<String, Long> f = new LinkedHashMap<>();
        var heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        f.put("heap_used", heap.getUsed());
        f.put("heap_committed", heap.getCommitted());
        f.put("nonheap_used", ManagementFactory.getMemoryMXBean().getNonHeapMemoryUsage().getUsed());
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (b.getName().equals("direct") || b.getName().equals("mapped")) {
                f.put("jdk_" + b.getName(), b.getMemoryUsed());
            }
        }
        f.put("netty_direct", PlatformDependent.usedDirectMemory());
        f.put("netty_pool_direct", PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory());
        f.put("netty_pool_active", PooledByteBufAllocator.DEFAULT.metric().directArenas().stream()
                .mapToLong(a -> a.numActiveAllocations()).sum());
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            for (String k : List.of("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmPTE", "Threads")) {
                if (line.startsWith(k + ":")) {
                    long v = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    f.put(k, k.equals("Threads") ? v : v * 1024);
                }
            }
        }
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            f.put("fds", fds.count());
        }
        f.put("maps", (long) Files.readAllLines(Path.of("/proc/self/maps")).size());
        String nmt = dcmd("vmNativeMemory", "summary");
        String histo = dcmd("gcClassHistogram");
        f.put("nmt_committed", parseNmt(nmt).getOrDefault("Total", -1L) * 1024);
        Matcher live = Pattern.compile("(?m)^Total\\s+\\d+\\s+(\\d+)").matcher(histo);
        f.put("heap_live_histogram", live.find() ? Long.parseLong(live.group(1)) : -1L);
        String tag = devices == 0 ? "after" : Integer.toString(devices);
        Files.writeString(out.resolve("nmt-" + tag + ".txt"), nmt);
        Files.writeString(out.resolve("histo-" + tag + ".txt"), histo);
        Files.writeString(out.resolve("smaps-" + tag + ".txt"), Files.readString(Path.of("/proc/self/smaps")));
        return new Snapshot(devices, f);
    }

    /** A diagnostic command (as jcmd runs it) in this JVM, through its MBean: no second JVM to start. */
    private static String dcmd(String op, String... args) throws Exception {
        return (String) ManagementFactory.getPlatformMBeanServer().invoke(
                new ObjectName("com.sun.management:type=DiagnosticCommand"), op, new Object[] {args},
                new String[] {String[].class.getName()});
    }

    /** NMT summary: committed KiB per category ("-   Java Heap (reserved=..KB, committed=..KB)"), plus the total. */
    private static Map<String, Long> parseNmt(String text) {
        Map<String, Long> m = new TreeMap<>();
        Matcher total = Pattern.compile("Total: reserved=\\d+KB, committed=(\\d+)KB").matcher(text);
        if (total.find()) {
            m.put("Total", Long.parseLong(total.group(1)));
        }
        Matcher c = Pattern.compile("-\\s+([A-Za-z][A-Za-z ]*?) \\(reserved=\\d+KB, committed=(\\d+)KB").matcher(text);
        while (c.find()) {
            m.put(c.group(1).trim(), Long.parseLong(c.group(2)));
        }
        return m;
    }

    /** Class histogram: class -> {instances, bytes}. */
    private static Map<String, long[]> parseHisto(String text) {
        Map<String, long[]> m = new TreeMap<>();
        Pattern p = Pattern.compile("^\\s*\\d+:\\s+(\\d+)\\s+(\\d+)\\s+(\\S+)");
        for (String line : text.split("\n")) {
            Matcher x = p.matcher(line);
            if (x.find()) {
                m.put(x.group(3), new long[] {Long.parseLong(x.group(1)), Long.parseLong(x.group(2))});
            }
        }
        return m;
    }

    private static void write(Path out, int queues, int depth, List<Snapshot> snaps, long[] add, long[] del)
            throws IOException {
        List<String> keys = new ArrayList<>(snaps.get(0).figures().keySet());
        try (PrintStream w = new PrintStream(Files.newOutputStream(out.resolve("snapshots.tsv")))) {
            w.println("queues\tdepth\tdevices\t" + String.join("\t", keys));
            for (Snapshot s : snaps) {
                StringBuilder b = new StringBuilder(queues + "\t" + depth + "\t" + s.devices());
                keys.forEach(k -> b.append('\t').append(s.figures().get(k)));
                w.println(b);
            }
        }
        try (PrintStream w = new PrintStream(Files.newOutputStream(out.resolve("times.tsv")))) {
            w.println("device\tadd_start_ns\tdelete_ns");
            for (int i = 0; i < add.length; i++) {
                w.println((i + 1) + "\t" + add[i] + "\t" + del[i]);
            }
        }
        Snapshot one = snaps.get(0);
        Map<String, Long> nmtOne = parseNmt(Files.readString(out.resolve("nmt-1.txt")));
        Map<String, long[]> histoOne = parseHisto(Files.readString(out.resolve("histo-1.txt")));
        try (PrintStream w = new PrintStream(Files.newOutputStream(out.resolve("per-device.txt")))) {
            w.printf("queues %d, depth %d; per device beyond the first: (value at N - value at 1) / (N - 1)%n",
                    queues, depth);
            for (Snapshot s : snaps) {
                if (s.devices() <= 1) {
                    continue;
                }
                int n = s.devices();
                w.printf("%nN = %d%n", n);
                for (String k : keys) {
                    w.printf("  %-18s %12.1f%n", k, (s.figures().get(k) - one.figures().get(k)) / (double) (n - 1));
                }
                w.printf("  NMT committed, bytes per device:%n");
                Map<String, Long> nmt = parseNmt(Files.readString(out.resolve("nmt-" + n + ".txt")));
                for (var e : nmt.entrySet()) {
                    long d = e.getValue() - nmtOne.getOrDefault(e.getKey(), 0L);
                    if (d != 0) {
                        w.printf("    %-28s %10.1f%n", e.getKey(), d * 1024.0 / (n - 1));
                    }
                }
                w.printf("  heap by class, bytes per device (|delta| >= 8 B):%n");
                Map<String, long[]> d = new TreeMap<>();
                parseHisto(Files.readString(out.resolve("histo-" + n + ".txt")))
                        .forEach((c, v) -> d.put(c, new long[] {v[0], v[1]}));
                histoOne.forEach((c, v) -> {
                    long[] x = d.computeIfAbsent(c, k -> new long[2]);
                    x[0] -= v[0];
                    x[1] -= v[1];
                });
                d.entrySet().stream()
                        .filter(e -> Math.abs(e.getValue()[1]) >= 8L * (n - 1))
                        .sorted((a, b) -> Long.compare(b.getValue()[1], a.getValue()[1]))
                        .forEach(e -> w.printf("    %10.1f B %8.2f objects  %s%n", e.getValue()[1] / (double) (n - 1),
                                e.getValue()[0] / (double) (n - 1), e.getKey()));
            }
            for (Snapshot s : snaps) {
                if (s.devices() > 1) {
                    smapsDelta(w, out, s.devices());
                }
            }
            w.printf("%ntimes per device while at most N devices were served (adds from 0 to N, deletes from N to 0):%n");
            for (Snapshot s : snaps) {
                if (s.devices() > 0) {
                    w.printf("  N = %4d  add+start: %s%n            delete:    %s%n", s.devices(),
                            stats(Arrays.copyOf(add, s.devices())), stats(Arrays.copyOf(del, s.devices())));
                }
            }
        }
        System.out.print(Files.readString(out.resolve("per-device.txt")));
    }

    /** Where RSS grew from 1 to {@code n} devices: per mapping (by start address), per device, the largest first. */
    private static void smapsDelta(PrintStream w, Path out, int n) throws IOException {
        Map<String, String[]> one = parseSmaps(Files.readString(out.resolve("smaps-1.txt")));
        Map<String, String[]> at = parseSmaps(Files.readString(out.resolve("smaps-" + n + ".txt")));
        Map<String, Long> byName = new TreeMap<>();
        List<String[]> rows = new ArrayList<>();
        for (var e : at.entrySet()) {
            String[] v = e.getValue();
            long before = one.containsKey(e.getKey()) ? Long.parseLong(one.get(e.getKey())[2]) : 0;
            long d = Long.parseLong(v[2]) - before;
            byName.merge(v[0].isEmpty() ? "[anon]" : v[0].replaceAll("ublkc\\d+", "ublkcN"), d, Long::sum);
            rows.add(new String[] {e.getKey(), v[0], v[1], Long.toString(d)});
        }
        for (var e : one.entrySet()) {
            if (!at.containsKey(e.getKey())) {
                long d = -Long.parseLong(e.getValue()[2]);
                byName.merge(e.getValue()[0].isEmpty() ? "[anon]" : e.getValue()[0], d, Long::sum);
                rows.add(new String[] {e.getKey(), e.getValue()[0] + " (gone)", e.getValue()[1], Long.toString(d)});
            }
        }
        w.printf("%nN = %d: RSS by mapping name, bytes per device (smaps Rss, 1 -> N):%n", n);
        byName.entrySet().stream().filter(e -> e.getValue() != 0)
                .sorted((a, b) -> Long.compare(Math.abs(b.getValue()), Math.abs(a.getValue())))
                .forEach(e -> w.printf("  %10.1f  %s%n", e.getValue() * 1024.0 / (n - 1), e.getKey()));
        w.printf("  the 12 mappings whose RSS changed most (KiB of RSS, whole process):%n");
        rows.stream().sorted((a, b) -> Long.compare(Math.abs(Long.parseLong(b[3])), Math.abs(Long.parseLong(a[3]))))
                .limit(12).forEach(r -> w.printf("  %+8d KiB  %s  size %s KiB  %s%n", Long.parseLong(r[3]), r[0],
                        r[2].isEmpty() ? "?" : r[2], r[1]));
    }

    /** smaps: start address -> {name, size KiB, rss KiB}. */
    private static Map<String, String[]> parseSmaps(String text) {
        Map<String, String[]> m = new LinkedHashMap<>();
        String key = null;
        String name = "";
        String size = "";
        for (String line : text.split("\n")) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                String[] f = line.trim().split("\\s+", 6);
                key = f[0].substring(0, f[0].indexOf('-')); // by start: a mapping that grew is the same one
                name = f.length > 5 ? f[5] : "";
                size = "";
            } else if (key != null && line.startsWith("Size:")) {
                size = line.replaceAll("[^0-9]", "");
            } else if (key != null && line.startsWith("Rss:")) {
                m.put(key, new String[] {name, size, line.replaceAll("[^0-9]", "")});
            }
        }
        return m;
    }

    /** "n=.. mean .. ms, p50 .. ms, p99 .. ms, max .. ms". */
    static String stats(long[] nanos) {
        long[] v = Arrays.stream(nanos).filter(x -> x > 0).sorted().toArray();
        if (v.length == 0) {
            return "none";
        }
        double mean = Arrays.stream(v).average().orElse(0) / 1e6;
        return String.format("n=%d mean %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms", v.length, mean,
                v[v.length / 2] / 1e6, v[Math.min(v.length - 1, (int) Math.ceil(v.length * 0.99) - 1)] / 1e6,
                v[v.length - 1] / 1e6);
    }
}

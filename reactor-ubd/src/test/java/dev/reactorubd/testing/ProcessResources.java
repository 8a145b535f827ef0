package dev.reactorubd.testing;

import io.netty.util.internal.PlatformDependent;
import java.io.IOException;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * What this process holds, for leak checks: fds and mappings (by kind), threads (the kernel's count, Java's, and the
 * io_uring workers the kernel adds to the process), heap in use after a full GC, and direct memory (the JDK's count
 * and Netty's).
 *
 * @param fds          entries of /proc/self/fd
 * @param fdKinds      those fds by what they point at (ublk char devices, io_uring, jars, ...)
 * @param maps         lines of /proc/self/maps
 * @param ublkMaps     mappings of a ublk char device (the queues' descriptor areas)
 * @param uringMaps    mappings of io_uring rings
 * @param threads      the process's tasks (/proc/self/status Threads), kernel io_uring workers included
 * @param javaThreads  live Java threads (ThreadMXBean)
 * @param threadKinds  the tasks by name with digits removed (ubd-loop-, boundedElastic-, iou-wrk-...), as the kernel has
 *                     them (truncated to 15 characters)
 * @param heapUsed     heap bytes in use after {@code System.gc()}
 * @param directBytes  the JDK's direct buffer pool, bytes
 * @param directCount  the JDK's direct buffer pool, buffers
 * @param nettyDirect  Netty's count of direct memory (PlatformDependent.usedDirectMemory(); -1 when untracked)
 */
public record ProcessResources(
        long fds,
        Map<String, Long> fdKinds,
        long maps,
        long ublkMaps,
        long uringMaps,
        long threads,
        int javaThreads,
        Map<String, Long> threadKinds,
        long heapUsed,
        long directBytes,
        long directCount,
        long nettyDirect) {
    private static final long MIB = 1 << 20;

    /** Takes a snapshot after two full collections (so that heap and cleaner-freed direct buffers settle). */
    public static ProcessResources now() {
        System.gc();
        System.gc();
        long heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
        BufferPoolMXBean direct = ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
                .filter(b -> b.getName().equals("direct"))
                .findFirst()
                .orElseThrow();
        Map<String, Long> fdKinds = new TreeMap<>();
        long fds = 0;
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            for (Path p : s.toList()) {
                fds++;
                fdKinds.merge(fdKind(p), 1L, Long::sum);
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        List<String> mapLines = lines(Path.of("/proc/self/maps"));
        long ublk = mapLines.stream().filter(l -> l.contains("/dev/ublkc")).count();
        long uring = mapLines.stream().filter(l -> l.contains("io_uring")).count();
        long threads = lines(Path.of("/proc/self/status")).stream()
                .filter(l -> l.startsWith("Threads:"))
                .mapToLong(l -> Long.parseLong(l.substring(8).trim()))
                .findFirst()
                .orElse(-1);
        Map<String, Long> threadKinds = new TreeMap<>();
        try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
            for (Path t : s.toList()) {
                try {
                    String name = Files.readString(t.resolve("comm")).trim().replaceAll("[0-9]+", "");
                    threadKinds.merge(name, 1L, Long::sum);
                } catch (IOException gone) {
                    // the task ended while we looked
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return new ProcessResources(
                fds,
                fdKinds,
                mapLines.size(),
                ublk,
                uring,
                threads,
                ManagementFactory.getThreadMXBean().getThreadCount(),
                threadKinds,
                heap,
                direct.getMemoryUsed(),
                direct.getCount(),
                PlatformDependent.usedDirectMemory());
    }

    /** Kernel io_uring workers (iou-wrk-N) among the process's tasks. */
    public long ioWorkers() {
        return threadKinds.entrySet().stream()
                .filter(e -> e.getKey().startsWith("iou-"))
                .mapToLong(Map.Entry::getValue)
                .sum();
    }

    /** Fds of ublk char devices. */
    public long ublkFds() {
        return fdKinds.getOrDefault("/dev/ublkc", 0L);
    }

    private static String fdKind(Path fd) {
        try {
            String target = Files.readSymbolicLink(fd).toString();
            if (target.startsWith("/dev/ublkc")) {
                return "/dev/ublkc";
            }
            if (target.startsWith("/dev/ublkb")) {
                return "/dev/ublkb";
            }
            if (target.endsWith(".jar")) {
                return "jar";
            }
            int bracket = target.indexOf(":[");
            if (bracket > 0) {
                // anon_inode:[io_uring], socket:[123], pipe:[123], anon_inode:[eventfd]...
                return target.replaceAll(":\\[[0-9]+]$", "");
            }
            return target.startsWith("/") ? "file" : target;
        } catch (IOException gone) {
            return "gone"; // the fd of the listing itself
        }
    }

    private static List<String> lines(Path p) {
        try {
            return Files.readAllLines(p);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** A one-line summary for test reports. */
    public String summary() {
        return String.format(
                "fds %d %s | maps %d (ublk %d, io_uring %d) | threads %d (java %d, io_uring workers %d)"
                        + " | heap used after GC %.1f MiB | direct: JDK %.1f MiB in %d buffers, Netty %s",
                fds,
                fdKinds,
                maps,
                ublkMaps,
                uringMaps,
                threads,
                javaThreads,
                ioWorkers(),
                heapUsed / (double) MIB,
                directBytes / (double) MIB,
                directCount,
                nettyDirect < 0 ? "untracked" : String.format("%.1f MiB", nettyDirect / (double) MIB));
    }

    /** Thread counts by kind, for the record. */
    public String threadSummary() {
        return threadKinds.toString();
    }
}

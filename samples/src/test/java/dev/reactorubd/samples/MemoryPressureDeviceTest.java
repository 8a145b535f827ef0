package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.IoFlusher;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.TaskFlags;
import dev.reactorubd.testing.Vm;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Issue #16's "safe under memory pressure", on the real driver: a writer in a cgroup whose {@code memory.max} is a small
 * fraction of what it dirties keeps writing files to ext4 on a device served by {@code ubd serve --target file
 * --lock-memory} (itself outside that cgroup, its file on ext4 over a null_blk disk, so the server's own writes are
 * buffered and throttled as a loop device's are) for {@link #WRITING}; it must finish, nothing may hang, and every file
 * must read back with the checksum it was written with. Throughout, every queue thread of the server and every io-wq
 * worker the kernel made for one is in IO_FLUSHER state, as the kernel's task flags show (what ublksrv's generic/008
 * checks), and the server's memory is locked (VmLck). Also: the caller's event loops become IO flushers only where
 * they got a queue, {@code ioFlusher(false)} leaves them alone, and a refused {@code --lock-memory} exits with status 4
 * naming RLIMIT_MEMLOCK.
 */
@DeviceTest
class MemoryPressureDeviceTest {
    /** How long the writer keeps dirtying pages (it finishes the file it is writing, and at least one round). */
    private static final Duration WRITING = Duration.ofMinutes(2);
    /** The writer's cgroup limit: far below the {@code FILES * FILE_MIB} (512 MiB) of one round. */
    private static final String MEMORY_MAX = "64M";

    private static final int FILES = 8;
    private static final int FILE_MIB = 64;
    private static final Duration WAIT = Duration.ofSeconds(120);
    /**
     * The JVM settings docs/memory-pressure.md gives for a server with {@code --lock-memory}, sized for the test VM: a
     * fixed, pre-touched heap and bounded direct memory and code cache.
     */
    private static final List<String> LOCKED_JVM = List.of(
            "-Xms96m",
            "-Xmx96m",
            "-XX:+AlwaysPreTouch",
            "-XX:MaxDirectMemorySize=64m",
            "-XX:ReservedCodeCacheSize=48m");
    /** The guest's /run is a tmpfs of its own. */
    private static final Path DIR = Path.of("/run/ubd-pressure");

    private static final String DATA = DIR + "/data";
    private static final String BACK = DIR + "/back";
    private static final String SUMS = DIR + "/sums";
    private static final String CGROUP = "/sys/fs/cgroup/ubd-writer";
    /** The null_blk disk under the backing file system: /dev/ubdpress. */
    private static final String NULLB = "ubdpress";

    private static final Pattern FILES_WRITTEN = Pattern.compile("files=(\\d+)");

    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void cleanUp() {
        UbdProcesses.killAll(processes);
        // The device's file system goes before its server is gone for good; the rest after.
        Vm.sh(60, "umount " + DATA + " 2>/dev/null || umount -l " + DATA + " 2>/dev/null; true");
        Vm.removeEveryDevice();
        Vm.sh(
                60,
                "umount " + BACK + " 2>/dev/null || umount -l " + BACK + " 2>/dev/null;"
                        + " n=/sys/kernel/config/nullb/" + NULLB + "; [ -d $n ] && { echo 0 > $n/power; rmdir $n; };"
                        + " [ -d " + CGROUP + " ] && rmdir " + CGROUP + "; rm -rf " + DIR + "; true");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("mp-app"), "blocking calls on the caller's loops");
    }

    @Test
    void aWriterInASmallCgroupFinishesAndItsDataVerifies() throws Exception {
        long dmesgBefore =
                Vm.sh(30, "dmesg | wc -l").requireSuccess().output().strip().transform(Long::parseLong);
        // The backing file system: ext4 on a memory-backed null_blk disk, so the server's writes to its file are
        // buffered, dirty and throttled like any writer's (the loop-device case IO_FLUSHER was made for).
        Vm.sh(
                        120,
                        "set -e; mkdir -p " + DATA + " " + BACK + " " + SUMS + "; n=/sys/kernel/config/nullb/" + NULLB
                                + "; mkdir $n; echo 1536 > $n/size; echo 1 > $n/memory_backed; echo 4096 > $n/blocksize;"
                                + " echo 1 > $n/power; mkfs.ext4 -q -F /dev/" + NULLB + "; mount /dev/" + NULLB + " "
                                + BACK)
                .requireSuccess();

        UbdProcesses.Started server = UbdProcesses.start(
                processes,
                DIR.resolve("serve.log"),
                LOCKED_JVM,
                "serve",
                "--target",
                "file",
                "--file",
                BACK + "/disk.img",
                "--create",
                "1G",
                "--queues",
                "2",
                "--lock-memory");
        long pid = server.process().pid();
        String dev = "/dev/ublkb" + server.id();
        long locked = vmLckKiB(pid);
        System.out.println("memory pressure: server " + pid + " serves " + dev + ", VmLck " + locked + " kB");
        assertTrue(locked > 0, "--lock-memory locked the server's memory: VmLck " + locked + " kB");
        Map<Long, TaskFlags.Task> seen = new TreeMap<>();
        checkQueueThreads(pid, seen);

        Vm.sh(300, "set -e; mkfs.ext4 -q -F " + dev + "; mount " + dev + " " + DATA)
                .requireSuccess();
        Vm.sh(
                        30,
                        "set -e; [ -e /sys/fs/cgroup/cgroup.controllers ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup;"
                                + " echo +memory > /sys/fs/cgroup/cgroup.subtree_control;"
                                // io too where the kernel has it: cgroup writeback (dirty throttling per cgroup) needs
                                // both.
                                + " echo +io > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo 'no io controller';"
                                + " mkdir " + CGROUP + "; echo " + MEMORY_MAX + " > " + CGROUP + "/memory.max")
                .requireSuccess();

        // Rounds of FILES files of FILE_MIB random MiB each, each file's md5 kept outside the device, until WRITING
        // has passed; the writer (this bash and its children) alone is in the small cgroup.
        String writer = "set -euo pipefail; echo $$ > " + CGROUP + "/cgroup.procs; end=$(( $(date +%s) + "
                + WRITING.toSeconds() + " )); n=0;"
                + " while [ $n -lt " + FILES + " ] || [ $(date +%s) -lt $end ]; do i=$((n % " + FILES + "));"
                + " sum=$(head -c " + FILE_MIB + "M /dev/urandom | tee " + DATA + "/f$i | md5sum | cut -d' ' -f1);"
                + " echo \"$sum  " + DATA + "/f$i\" > " + SUMS + "/f$i; n=$((n + 1)); done; echo files=$n";
        Path writerLog = DIR.resolve("writer.log");
        long started = System.nanoTime();
        Process w = new ProcessBuilder("bash", "-c", writer)
                .redirectErrorStream(true)
                .redirectOutput(writerLog.toFile())
                .start();
        processes.add(w);
        long deadline = started + WRITING.plus(WAIT).toNanos();
        while (w.isAlive() && System.nanoTime() < deadline) {
            checkQueueThreads(pid, seen); // io-wq workers come and go: look at them while they work
            w.waitFor(5, TimeUnit.SECONDS);
        }
        if (w.isAlive()) {
            String stacks = Vm.sh(
                            30,
                            "for p in " + w.pid() + " $(pgrep -P " + w.pid() + "); do echo \"== $p\";"
                                    + " cat /proc/$p/stack; done; grep . " + CGROUP + "/memory.events")
                    .output();
            throw new AssertionError("the writer is still going " + WRITING.plus(WAIT) + " after it started:\n"
                    + Files.readString(writerLog) + "\n" + stacks);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        String out = Files.readString(writerLog);
        if (w.exitValue() != 0) {
            throw new AssertionError("the writer failed with status " + w.exitValue() + " after " + (long) seconds
                    + " s: " + out + "\n"
                    + Vm.sh(
                                    30,
                                    "grep . " + CGROUP + "/memory.events " + CGROUP + "/memory.stat; df -h " + DATA
                                            + "; dmesg | tail -n +" + (dmesgBefore + 1) + " | tail -80")
                            .output());
        }
        Matcher m = FILES_WRITTEN.matcher(out);
        assertTrue(m.find(), out);
        long mib = Long.parseLong(m.group(1)) * FILE_MIB;
        String events = Files.readString(Path.of(CGROUP, "memory.events"));
        String peak = Vm.sh(10, "cat " + CGROUP + "/memory.peak 2>/dev/null || echo n/a")
                .output()
                .strip();
        System.out.printf(
                "memory pressure: the writer dirtied %d MiB in %.0f s (%.1f MiB/s) with memory.max %s "
                        + "(memory.peak %s; %s)%n",
                mib, seconds, mib / seconds, MEMORY_MAX, peak, events.strip().replace('\n', ','));
        assertTrue(mib >= (long) FILES * FILE_MIB, "at least one round: " + mib + " MiB");
        assertTrue(events.contains("oom_kill 0"), "no OOM kill in the writer's cgroup: " + events);

        // Read back from the device itself: unmount, drop every cached page, mount again.
        Vm.Result verify = Vm.sh(
                600,
                "set -e; sync; umount " + DATA + "; echo 3 > /proc/sys/vm/drop_caches;" + " mount " + dev + " " + DATA
                        + "; cat " + SUMS + "/f* | md5sum -c -");
        assertEquals(0, verify.exitCode(), "every file reads back as written:\n" + verify.output());
        assertEquals(
                FILES, verify.output().lines().filter(l -> l.endsWith(": OK")).count(), verify.output());
        Vm.sh(120, "umount " + DATA).requireSuccess();

        server.process().destroy(); // SIGTERM: stop, drain, delete
        assertTrue(server.process().waitFor(120, TimeUnit.SECONDS), "the server stopped");
        String log = Files.readString(DIR.resolve("serve.log"));
        assertEquals(0, server.process().exitValue(), log);
        assertTrue(log.contains("(0 failed)"), "no request failed: " + log);
        assertFalse(log.contains("IO_FLUSHER state"), "no IO_FLUSHER warning as root: " + log);

        String kernel = Vm.sh(30, "dmesg | tail -n +" + (dmesgBefore + 1)).output();
        List<String> bad = kernel.lines()
                .filter(l -> l.contains("blocked for more than")
                        || l.contains("hung_task")
                        || l.contains("I/O error")
                        || l.contains("out of memory")
                        || l.contains("Out of memory"))
                .toList();
        assertEquals(List.of(), bad, "the kernel's log while the writer ran:\n" + kernel);
        System.out.println("memory pressure: IO_FLUSHER on " + seen.values());
    }

    /**
     * Every queue thread of the server ({@code ubd-loop-*}: with 2 queues on a 2-CPU guest, each of its loops has a
     * queue) and every io-wq worker of one ({@code iou-wrk-TID}) is in IO_FLUSHER state, by the kernel's task flags.
     */
    private static void checkQueueThreads(long pid, Map<Long, TaskFlags.Task> seen) {
        List<TaskFlags.Task> tasks = TaskFlags.of(pid);
        Set<String> loops = tasks.stream()
                .filter(t -> t.name().startsWith("ubd-loop-"))
                .map(t -> Long.toString(t.tid()))
                .collect(Collectors.toSet());
        List<TaskFlags.Task> queueThreads = tasks.stream()
                .filter(t -> t.name().startsWith("ubd-loop-")
                        || t.name().startsWith("iou-wrk-")
                                && loops.contains(t.name().substring("iou-wrk-".length())))
                .toList();
        assertTrue(loops.size() >= 2, "the server's two queue threads: " + tasks);
        for (TaskFlags.Task t : queueThreads) {
            assertTrue(
                    t.ioFlusher(),
                    "queue thread " + t + " is in IO_FLUSHER state (flags " + Long.toHexString(TaskFlags.IO_FLUSHER)
                            + "); all: " + tasks);
            seen.put(t.tid(), t);
        }
    }

    private static long vmLckKiB(long pid) throws Exception {
        return Files.readAllLines(Path.of("/proc", Long.toString(pid), "status")).stream()
                .filter(l -> l.startsWith("VmLck:"))
                .findFirst()
                .orElseThrow()
                .replaceAll("[^0-9]", "")
                .transform(Long::parseLong);
    }

    @Test
    void theCallersLoopsBecomeIoFlushersWhereTheyGetAQueueAndNotWhenTurnedOff() throws Exception {
        long size = 16L << 20;
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(
                3, new DefaultThreadFactory("mp-app", true), IoUringIoHandler.newFactory());
        try {
            try (UbdServer server = UbdServer.create(group)) {
                UbdDevice d = server.serve(
                                DeviceSpec.builder()
                                        .capacityBytes(size)
                                        .queues(2)
                                        .build(),
                                new MemoryBackend(size))
                        .block(WAIT);
                Set<EventExecutor> queueLoops =
                        d.queues().stream().map(UbdQueue::loop).collect(Collectors.toSet());
                assertEquals(2, queueLoops.size(), "round robin over 3 loops gives each queue its own");
                for (EventExecutor loop : queueLoops) {
                    assertTrue(IoFlusher.isSet(loop).block(WAIT), loop + " serves a queue");
                }
                // The state is copied into a thread that a queue thread starts (the javadoc's warning).
                AtomicBoolean child = new AtomicBoolean();
                Thread started = queueLoops
                        .iterator()
                        .next()
                        .submit(() -> {
                            Thread t = new Thread(() -> child.set(IoFlusher.isSetOnCurrentThread()), "mp-child");
                            t.start();
                            return t;
                        })
                        .get(WAIT.toSeconds(), TimeUnit.SECONDS);
                started.join(WAIT.toMillis());
                assertTrue(child.get(), "a thread started by a queue thread is an IO flusher too");
                // A second device on the same loops: nothing changes, nothing is asked again.
                UbdDevice d2 = server.serve(
                                DeviceSpec.builder()
                                        .capacityBytes(size)
                                        .queues(1)
                                        .build(),
                                new MemoryBackend(size))
                        .block(WAIT);
                assertTrue(IoFlusher.isSet(d2.queues().get(0).loop()).block(WAIT));
                for (EventExecutor loop : group) {
                    boolean hasQueue = queueLoops.contains(loop)
                            || loop == d2.queues().get(0).loop();
                    assertEquals(hasQueue, IoFlusher.isSet(loop).block(WAIT), loop + " has a queue: " + hasQueue);
                }
                d2.close().block(WAIT);
                d.close().block(WAIT);
            }
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }

        MultiThreadIoEventLoopGroup off = new MultiThreadIoEventLoopGroup(
                1, new DefaultThreadFactory("mp-app-off", true), IoUringIoHandler.newFactory());
        // A new thread copies its creator's IO_FLUSHER state, and Netty starts a loop's thread from whichever thread
        // first gives it a task: started from a queue thread (or a pool worker that one started) it would be an IO
        // flusher before the server saw it. Started here, from the test's thread, it is not.
        assertFalse(IoFlusher.isSetOnCurrentThread(), "the test's thread is no IO flusher");
        off.next().submit(() -> {}).syncUninterruptibly();
        try (UbdServer server =
                UbdServer.builder().eventLoops(off).ioFlusher(false).build()) {
            UbdDevice d = server.serve(
                            DeviceSpec.builder().capacityBytes(size).queues(1).build(), new MemoryBackend(size))
                    .block(WAIT);
            assertFalse(IoFlusher.isSet(d.queues().get(0).loop()).block(WAIT), "ioFlusher(false)");
            d.close().block(WAIT);
        } finally {
            off.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    @Test
    void aRefusedLockMemoryExitsWithStatus4AndNamesTheLimit() {
        // Root without CAP_IPC_LOCK (dropped from the bounding set, so the exec'd JVM lacks it) under a low limit.
        String serve = "setpriv --bounding-set=-ipc_lock prlimit --memlock=%s -- "
                + UbdJvm.shellLine("serve", "--lock-memory", "--target", "null", "--size", "8M")
                        .replace("%", "%%")
                + "; echo status=$?";
        Vm.Result none = Vm.sh(120, serve.formatted("0:0"));
        assertTrue(none.output().contains("status=4"), none.output());
        assertTrue(
                none.output().contains("ubd: cannot lock the process's memory")
                        && none.output().contains("EPERM")
                        && none.output().contains("RLIMIT_MEMLOCK is 0")
                        && none.output().contains("CAP_IPC_LOCK")
                        && none.output().contains("ulimit -l unlimited"),
                none.output());
        assertFalse(none.output().contains("serving "), "nothing served: " + none.output());

        Vm.Result low = Vm.sh(120, serve.formatted("1048576:1048576"));
        assertTrue(low.output().contains("status=4"), low.output());
        assertTrue(
                low.output().contains("ENOMEM")
                        && low.output().contains("RLIMIT_MEMLOCK is 1024 KiB")
                        && low.output().contains("VmSize"),
                low.output());
        assertFalse(low.output().contains("serving "), "nothing served: " + low.output());
    }
}

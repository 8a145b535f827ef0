// The in-process side of scripts/soak: one JVM (this file, run by the JDK's source launcher with the ubd.jar on the
// class path) adds, uses and removes devices in a loop for SECONDS, and reports whether that left anything behind.
//   java --enable-native-access=ALL-UNNAMED -cp samples/target/ubd.jar scripts/SoakChurn.java SECONDS RESULT_FILE
// Each cycle serves a 16 MiB two-queue memory device, writes 64 KiB with O_DIRECT from this JVM, reads it back and
// compares, closes the device and checks it is gone (its id may already serve another process's device). After a
// warm-up of 20 cycles, and at the end, it counts its fds, mappings and threads (the kernel's io_uring workers and
// Reactor's elastic workers aside: both come and go with the work by design). RESULT_FILE gets one line: "cycles failures fds0 fds1 maps0 maps1 threads0 threads1".
import com.sun.nio.file.ExtendedOpenOption;
import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.io.IOException;
import reactor.core.publisher.Mono;

public class SoakChurn {
    private static final long SIZE = 16 << 20;
    private static final int IO = 64 << 10;
    private static final int WARM_UP = 20;
    private static final Duration WAIT = Duration.ofMinutes(2);

    public static void main(String[] args) throws Exception {
        long end = System.nanoTime() + Long.parseLong(args[0]) * 1_000_000_000L;
        Path result = Path.of(args[1]);
        ByteBuffer buf = ByteBuffer.allocateDirect(IO + 4096).alignedSlice(4096).limit(IO);
        int cycles = 0;
        int failures = 0;
        long[] start = null;
        try (UbdServer server = UbdServer.create()) {
            while (System.nanoTime() < end) {
                cycles++;
                UbdDevice dev = null;
                try {
                    dev = server.serve(DeviceSpec.builder().capacityBytes(SIZE).queues(2).depth(32).build(),
                            new MemoryBackend(SIZE)).block(WAIT);
                    long where = (cycles * (long) IO) % SIZE;
                    try (FileChannel ch = FileChannel.open(Path.of(dev.blockDevicePath()), StandardOpenOption.READ,
                            StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT)) {
                        buf.clear();
                        for (int i = 0; i < IO; i += 4) {
                            buf.putInt(i, cycles * 31 + i);
                        }
                        if (ch.write(buf, where) != IO) {
                            throw new IllegalStateException("short write");
                        }
                        buf.clear();
                        for (int i = 0; i < IO; i += 4) {
                            buf.putInt(i, 0);
                        }
                        if (ch.read(buf, where) != IO) {
                            throw new IllegalStateException("short read");
                        }
                        for (int i = 0; i < IO; i += 4) {
                            if (buf.getInt(i) != cycles * 31 + i) {
                                throw new IllegalStateException("word " + i + " of cycle " + cycles + " differs");
                            }
                        }
                    }
                    dev.close().block(WAIT);
                    if (Files.exists(Path.of("/sys/class/ublk-char/ublkc" + dev.id()))) {
                        // The id may already be another process's: the soak adds devices from other processes too,
                        // and the kernel hands out the lowest free id. Ours survived only if this process serves it.
                        DeviceInfo now = server.control().deviceInfo(dev.id())
                                .onErrorResume(UbdNoSuchDeviceException.class, x -> Mono.empty())
                                .block(WAIT);
                        if (now != null && now.serverPid() == ProcessHandle.current().pid()) {
                            throw new IllegalStateException("device " + dev.id() + " still exists after close: " + now);
                        }
                    }
                } catch (RuntimeException | IOException e) {
                    failures++;
                    System.out.println("soak-churn: cycle " + cycles + " failed: " + e);
                    if (dev != null) {
                        dev.close().onErrorResume(x -> Mono.empty()).block(WAIT);
                    }
                }
                if (cycles == WARM_UP) {
                    start = resources();
                }
                if (cycles % 100 == 0) {
                    System.out.println("soak-churn: " + cycles + " cycles, " + failures + " failed");
                }
            }
        }
        long[] now = resources();
        if (start == null) {
            start = now; // fewer cycles than the warm-up: nothing to compare
        }
        System.out.printf("soak-churn: %d cycles, %d failed; fds %d -> %d, maps %d -> %d, threads %d -> %d%n",
                cycles, failures, start[0], now[0], start[1], now[1], start[2], now[2]);
        Files.writeString(result, cycles + " " + failures + " " + start[0] + " " + now[0] + " " + start[1] + " "
                + now[1] + " " + start[2] + " " + now[2] + "\n");
    }

    /** fds, mappings, threads other than io_uring and elastic workers. */
    private static long[] resources() throws IOException {
        long fds;
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            fds = s.count() - 1; // the listing's own
        }
        long maps = Files.readAllLines(Path.of("/proc/self/maps")).size();
        long threads = 0;
        try (var s = Files.list(Path.of("/proc/self/task"))) {
            for (Path t : s.toList()) {
                String name;
                try {
                    name = Files.readString(t.resolve("comm")).trim();
                } catch (IOException gone) {
                    continue;
                }
                if (!name.startsWith("iou-") && !name.startsWith("boundedElastic")) {
                    threads++;
                }
            }
        }
        return new long[] {fds, maps, threads};
    }

    private SoakChurn() {
    }
}

package dev.reactorubd.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * What device test classes share: a server per class that starts from a clean slate, serving and closing devices
 * with checks, the checks after each test, and fio's verifying run.
 */
public final class Devices {
    /** The bound on device and backend calls in the VM (its CPU is emulated). */
    public static final Duration WAIT = Duration.ofSeconds(90);

    private Devices() {}

    /** A server on its own loops, after removing any device a previous test class left behind. */
    public static UbdServer startServer() {
        UbdServer server = UbdServer.create();
        removeLeftovers(server.control());
        return server;
    }

    /**
     * Removes every ublk device, held or not (a test that failed may have left one behind with a writer still
     * attached): stops each and deletes it asynchronously, then waits, bounded, until the kernel has freed every id.
     */
    public static void removeLeftovers(UbdControl control) {
        control.listDevices()
                .concatMap(d -> control.removeDeviceAsync(d.id()))
                .then()
                .block(WAIT);
        long deadline = System.nanoTime() + WAIT.toNanos();
        Path ids = Path.of("/sys/class/ublk-char");
        while (true) {
            try (var s = Files.list(ids)) {
                List<Path> left = s.toList();
                if (left.isEmpty()) {
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("devices still held " + WAIT + " after their removal: " + left);
                }
            } catch (IOException e) {
                return; // no ublk class: nothing left
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }

    /** After each test: no blocking call on a ubd thread, and every device of {@code server} closed. */
    public static void assertClean(UbdServer server) {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
        assertEquals(Set.of(), server.devices(), "every device was closed");
    }

    /** Serves {@code backend} and checks that its block device appeared. */
    public static UbdDevice serve(UbdServer server, DeviceSpec spec, BlockBackend backend) {
        UbdDevice dev = server.serve(spec, backend).block(WAIT);
        assertTrue(Files.exists(Path.of(dev.blockDevicePath())), dev.blockDevicePath() + " exists");
        return dev;
    }

    /** Closes a device and checks that its block device and its id are gone. */
    public static void closeAndCheckGone(UbdDevice dev) {
        dev.close().block(WAIT);
        assertFalse(Files.exists(Path.of(dev.blockDevicePath())), dev.blockDevicePath() + " is gone");
        assertFalse(Vm.deviceExists(dev.id()), "device " + dev.id() + " is deleted");
    }

    /**
     * fio writes {@code bytes} with mixed request sizes (4k-128k) at depth 32, then reads everything back and checks
     * each block's crc32c. Two jobs, one pinned to each CPU on its own half: blk-mq maps each CPU to its own queue, so
     * a two-queue device serves IO on both. Asserts that fio succeeded, and prints its IOPS lines for the record.
     */
    public static Vm.Result fioVerify(UbdDevice dev, String name, long bytes) {
        Vm.Result r = Vm.sh(
                600,
                "fio --name=" + name + " --filename=" + dev.blockDevicePath()
                        + " --rw=randwrite --bsrange=4k-128k --iodepth=32 --ioengine=io_uring --direct=1"
                        + " --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting"
                        + " --numjobs=2 --size=" + bytes / 2 + " --offset_increment=" + bytes / 2
                        + " --cpus_allowed=0,1 --cpus_allowed_policy=split");
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("err= 0"), r.output());
        r.output().lines().filter(l -> l.contains("IOPS=")).forEach(l -> System.out.println("fio " + name + ":" + l));
        return r;
    }

    /**
     * Writes completed on {@code /dev/ublkbN} so far, from its sysfs stat.
     *
     * @param id the device id N
     * @return the count
     * @throws java.io.IOException when the stat cannot be read
     */
    public static long writesCompleted(int id) throws IOException {
        String[] f = Files.readString(Path.of("/sys/block/ublkb" + id + "/stat"))
                .trim()
                .split("\\s+");
        return Long.parseLong(f[4]);
    }

    /**
     * Waits, for at most 120 s, until {@code n} more writes completed on {@code /dev/ublkbN} while {@code fio} runs:
     * so that what a test does next (a kill, a hand-over) lands mid-run.
     *
     * @param id the device id N
     * @param fio the fio process writing to it
     * @param n the writes to wait for
     * @throws Exception when interrupted or the stat cannot be read
     */
    public static void awaitProgress(int id, Process fio, long n) throws Exception {
        long target = writesCompleted(id) + n;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (writesCompleted(id) < target) {
            assertTrue(fio.isAlive(), "fio is still running");
            assertTrue(System.nanoTime() < deadline, "fio made progress");
            Thread.sleep(50);
        }
    }
}

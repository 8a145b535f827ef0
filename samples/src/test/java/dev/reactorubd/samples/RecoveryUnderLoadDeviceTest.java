package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Nothing is lost when the serving process dies: a recoverable file-target device under fio with crc32c verify has its
 * server killed with SIGKILL three times in one fio run, and is taken over each time (twice by {@code ubd recover},
 * once by {@link UbdServer#recover} in this JVM); fio sees no error and its verify pass finds every block intact.
 */
@DeviceTest
class RecoveryUnderLoadDeviceTest {
    private static final long MIB = 1 << 20;
    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void cleanUp() {
        processes.forEach(Process::destroyForcibly);
        Vm.removeEveryDevice();
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    private static void kill(Process p) throws InterruptedException {
        p.destroyForcibly(); // SIGKILL: no cleanup at all, requests in flight stay in flight
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the killed server is gone");
    }

    @Test
    void threeKillsInOneFioRunLoseNothing() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-recovery");
        Path img = dir.resolve("store.img");
        String file = img.toString();
        int id = UbdProcesses.start(
                        processes,
                        dir.resolve("serve.log"),
                        "serve",
                        "--target",
                        "file",
                        "--file",
                        file,
                        "--create",
                        "64M",
                        "--queues",
                        "2",
                        "--depth",
                        "32",
                        "--recoverable")
                .id();
        String dev = "/dev/ublkb" + id;
        Path fioOut = dir.resolve("fio.out");
        Process fio = new ProcessBuilder(
                        "fio",
                        "--name=recovery",
                        "--filename=" + dev,
                        "--rw=randwrite",
                        "--bsrange=4k-64k",
                        "--iodepth=32",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1",
                        "--group_reporting",
                        "--numjobs=2",
                        "--size=24M",
                        "--offset_increment=24M",
                        "--cpus_allowed=0,1",
                        "--cpus_allowed_policy=split")
                .redirectErrorStream(true)
                .redirectOutput(fioOut.toFile())
                .start();
        processes.add(fio);
        UbdServer inProcess = null;
        FileBackend store = null;
        try {
            for (int kill = 1; kill <= 3; kill++) {
                Devices.awaitProgress(id, fio, 300);
                kill(processes.get(processes.size() - (kill == 1 ? 2 : 1)));
                if (kill < 3) {
                    int again = UbdProcesses.start(
                                    processes,
                                    dir.resolve("recover" + kill + ".log"),
                                    "recover",
                                    "--id",
                                    String.valueOf(id),
                                    "--target",
                                    "file",
                                    "--file",
                                    file)
                            .id();
                    assertEquals(id, again, "the same device is served again");
                } else {
                    inProcess = UbdServer.create();
                    store = FileBackend.open(img);
                    UbdDevice recovered = inProcess.recover(id, store).block(Devices.WAIT);
                    assertEquals(id, recovered.id());
                }
                System.out.println(
                        "recovery: kill " + kill + " survived at " + Devices.writesCompleted(id) + " writes");
            }
            assertTrue(fio.waitFor(600, TimeUnit.SECONDS), "fio finished");
            String out = Files.readString(fioOut, StandardCharsets.UTF_8);
            assertEquals(0, fio.exitValue(), out);
            assertTrue(out.contains("err= 0"), out);
            assertFalse(out.contains("verify:") && out.contains("bad"), out);
            out.lines().filter(l -> l.contains("IOPS=")).forEach(l -> System.out.println("fio recovery:" + l));
        } finally {
            if (inProcess != null) {
                inProcess.close(); // stops and deletes the device it recovered
            }
            if (store != null) {
                store.close().block(Devices.WAIT);
            }
        }
        assertFalse(Vm.deviceExists(id), "device " + id + " deleted");
        Vm.sh(30, "rm -rf " + dir);
    }

    @Test
    void aServerKilledRightAfterAFlushLeavesTheDataInTheFileAndIsRecovered() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-recovery-idle");
        String file = dir.resolve("store.img").toString();
        Process first;
        int id = UbdProcesses.start(
                        processes,
                        dir.resolve("serve.log"),
                        "serve",
                        "--target",
                        "file",
                        "--file",
                        file,
                        "--create",
                        "16M",
                        "--recoverable")
                .id();
        first = processes.get(processes.size() - 1);
        String dev = "/dev/ublkb" + id;
        Vm.sh(
                        60,
                        "head -c 1048576 /dev/urandom > " + dir + "/data; dd if=" + dir + "/data of=" + dev
                                + " bs=64k oflag=direct conv=fsync status=none")
                .requireSuccess();
        kill(first);
        // Durability: the FLUSH (conv=fsync) completed before the kill, so the data is in the file itself.
        Vm.sh(60, "cmp -n 1048576 " + file + " " + dir + "/data").requireSuccess();
        UbdProcesses.start(
                processes,
                dir.resolve("recover.log"),
                "recover",
                "--id",
                String.valueOf(id),
                "--target",
                "file",
                "--file",
                file);
        Vm.sh(60, "cmp -n 1048576 " + dev + " " + dir + "/data").requireSuccess();
        Process server = processes.get(processes.size() - 1);
        server.destroy();
        assertTrue(server.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, server.exitValue(), Files.readString(dir.resolve("recover.log")));
        Vm.sh(30, "rm -rf " + dir);
    }

    @Test
    void recoveringADeviceThatWasNotMadeRecoverableSaysSo() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-recovery-no");
        int id = UbdProcesses.start(processes, dir.resolve("serve.log"), "serve", "--target", "memory", "--size", "16M")
                .id();
        kill(processes.get(processes.size() - 1));
        try (UbdServer server = UbdServer.create()) {
            UbdUnsupportedException e = assertThrows(
                    UbdUnsupportedException.class,
                    () -> server.recover(id, new NullBackend()).block(Devices.WAIT));
            assertTrue(e.getMessage().contains("without USER_RECOVERY"), e.getMessage());
            server.control().removeDevice(id).block(Devices.WAIT);
        }
        assertFalse(Vm.deviceExists(id));
        Vm.sh(30, "rm -rf " + dir);
    }

    /**
     * FAIL_IO is probed, not assumed: where the kernel lacks it (before 6.13), {@code serve --recovery FAIL_IO} exits 3
     * naming the feature and the version that added it; where it has it, IO fails at once with an I/O error while no server runs instead
     * of waiting, and a recovering server then serves the data the first one left in the file.
     */
    @Test
    void failIoRecoveryIsProbedRefusedWithoutTheFeatureAndFailsIoWhileNoServerRunsWithIt() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-recovery-failio");
        String file = dir.resolve("store.img").toString();
        boolean kernelHasIt;
        try (UbdServer probe = UbdServer.create()) {
            kernelHasIt = probe.control().features().block(Devices.WAIT).contains(UblkFeature.USER_RECOVERY_FAIL_IO);
        }
        System.out.println("FAIL_IO recovery on Linux " + System.getProperty("os.version") + ": "
                + (kernelHasIt ? "supported" : "not supported"));
        Path log = dir.resolve("serve.log");
        if (!kernelHasIt) {
            Process p = new ProcessBuilder(UbdJvm.command(
                            "serve", "--target", "file", "--file", file, "--create", "16M", "--recovery", "FAIL_IO"))
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            processes.add(p);
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "ubd serve gave up");
            String out = Files.readString(log);
            assertEquals(3, p.exitValue(), out);
            assertTrue(
                    out.contains("ubd: this kernel does not support USER_RECOVERY_FAIL_IO (added in Linux 6.13)"), out);
            assertFalse(out.contains("\tat "), "one line, no stack trace: " + out);
            Vm.sh(30, "rm -rf " + dir);
            return;
        }
        int id = UbdProcesses.start(
                        processes,
                        log,
                        "serve",
                        "--target",
                        "file",
                        "--file",
                        file,
                        "--create",
                        "16M",
                        "--recovery",
                        "FAIL_IO")
                .id();
        String dev = "/dev/ublkb" + id;
        Vm.sh(
                        60,
                        "head -c 1048576 /dev/urandom > " + dir + "/data; dd if=" + dir + "/data of=" + dev
                                + " bs=64k oflag=direct conv=fsync status=none")
                .requireSuccess();
        kill(processes.get(processes.size() - 1));
        // No server: a reader fails at once (bounded well below the 120 s a waiting reader would take).
        long t0 = System.nanoTime();
        Vm.Result read = Vm.sh(60, "dd if=" + dev + " of=/dev/null bs=4k count=1 iflag=direct 2>&1");
        // The kernel fails it as a target error: EREMOTEIO ("Remote I/O error") on 6.18; EIO is accepted as well.
        assertTrue(
                read.exitCode() != 0
                        && (read.output().contains("Remote I/O error")
                                || read.output().contains("Input/output error")),
                read.output());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "failed at once rather than waited");
        try (UbdServer server = UbdServer.create()) {
            UbdDevice recovered =
                    server.recover(id, FileBackend.open(Path.of(file))).block(Devices.WAIT);
            Vm.sh(60, "cmp -n 1048576 " + dev + " " + dir + "/data").requireSuccess();
            recovered.close().block(Devices.WAIT);
        }
        assertFalse(Vm.deviceExists(id));
        Vm.sh(30, "rm -rf " + dir);
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code ubd serve --target rbd} against the real Ceph test cluster (scripts/ceph-cluster, on the host; its conf in
 * {@code UBD_CEPH_CONF}, set by scripts/test-all): a recoverable RBD device under fio with crc32c verify has its
 * server killed with SIGKILL, {@code ubd recover} takes it over (librbd takes the image's exclusive lock over from the
 * dead client once the cluster drops its watch, 5 s in the test cluster), and fio sees no error. Newest kernel only:
 * recovery under fio on every kernel is RecoveryUnderLoadDeviceTest's.
 */
@DeviceTest
@NewestKernelOnly
class RbdServeDeviceTest {
    private static String conf;
    private final List<Process> processes = new ArrayList<>();

    @BeforeAll
    static void cluster() {
        conf = System.getenv("UBD_CEPH_CONF");
        assertTrue(
                conf != null && Files.isReadable(Path.of(conf)),
                "UBD_CEPH_CONF names no readable ceph.conf (" + conf
                        + "): run the device tests through scripts/test-all," + " which starts the Ceph test cluster");
    }

    @AfterEach
    void cleanUp() {
        processes.forEach(Process::destroyForcibly);
        Vm.removeEveryDevice();
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void aServerKilledUnderFioIsRecoveredAndNothingIsLost() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-rbd");
        String image = "rbd/cli-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000;
        Vm.run(120, "rbd", "-c", conf, "create", "--size", "64M", image).requireSuccess();
        int id = UbdProcesses.start(
                        processes,
                        dir.resolve("serve.log"),
                        "serve",
                        "--target",
                        "rbd",
                        "--image",
                        image,
                        "--ceph-conf",
                        conf,
                        "--queues",
                        "2",
                        "--depth",
                        "32",
                        "--recoverable")
                .id();
        Process first = processes.get(processes.size() - 1);
        String dev = "/dev/ublkb" + id;
        Path fioOut = dir.resolve("fio.out");
        Process fio = new ProcessBuilder(
                        "fio",
                        "--name=rbd-recovery",
                        "--filename=" + dev,
                        "--rw=randwrite",
                        "--bsrange=4k-128k",
                        "--iodepth=32",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1",
                        "--group_reporting",
                        "--numjobs=2",
                        "--size=16M",
                        "--offset_increment=16M",
                        "--cpus_allowed=0,1",
                        "--cpus_allowed_policy=split")
                .redirectErrorStream(true)
                .redirectOutput(fioOut.toFile())
                .start();
        processes.add(fio);
        Devices.awaitProgress(id, fio, 200);
        first.destroyForcibly(); // SIGKILL: librbd's requests in flight, its lock and its watch are left behind
        assertTrue(first.waitFor(60, TimeUnit.SECONDS), "the killed server is gone");
        int again = UbdProcesses.start(
                        processes,
                        dir.resolve("recover.log"),
                        "recover",
                        "--id",
                        String.valueOf(id),
                        "--target",
                        "rbd",
                        "--image",
                        image,
                        "--ceph-conf",
                        conf)
                .id();
        assertEquals(id, again, "the same device is served again");
        assertTrue(fio.waitFor(600, TimeUnit.SECONDS), "fio finished");
        String out = Files.readString(fioOut, StandardCharsets.UTF_8);
        assertEquals(0, fio.exitValue(), out + "\n" + Files.readString(dir.resolve("recover.log")));
        assertTrue(out.contains("err= 0"), out);
        out.lines().filter(l -> l.contains("IOPS=")).forEach(l -> System.out.println("fio rbd recovery:" + l));
        Process server = processes.get(processes.size() - 1);
        server.destroy();
        assertTrue(server.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, server.exitValue(), Files.readString(dir.resolve("recover.log")));
        assertFalse(Vm.deviceExists(id), "device " + id + " deleted");
        Vm.run(120, "rbd", "-c", conf, "rm", "--no-progress", image);
        Vm.sh(30, "rm -rf " + dir);
    }
}

package dev.reactorubd.targets.rbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import reactor.core.Disposable;

/**
 * The RBD target under the real ublk driver, against the real one-node Ceph cluster on the host (scripts/ceph-cluster,
 * reached from the VM through {@code ubd-vm --host-tcp}: the cluster's ports on the host's loopback and nothing else):
 * fio with verification through /dev/ublkbN, an ext4 round trip across a re-open, a snapshot served read-only with the
 * data of its time, a resize of the image in the cluster that the device follows (UPDATE_SIZE, 6.16+), and the OSD
 * killed under fio.
 *
 * <p>Newest kernel only: what this drives through ublk (fio verify with two queues, ext4, a read-only device, a resize)
 * is covered on every kernel by FileDeviceTest, NbdDeviceTest and ResizeDeviceTest; the RBD target itself does not
 * change with the kernel.
 *
 * <p>Bounds assumed (the VM emulates its CPU): 90 s for device control and backend calls, 600 s for a fio run.
 */
@DeviceTest
@NewestKernelOnly
class RbdDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long MIB = 1 << 20;
    private static CephTestCluster ceph;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    private final List<RbdBackend> backends = new ArrayList<>();

    @BeforeAll
    static void cluster() throws Exception {
        ceph = CephTestCluster.get();
    }

    @AfterEach
    void closeBackends() {
        for (RbdBackend b : backends) {
            b.close().block(WAIT);
        }
    }

    private RbdBackend open(RbdImageSpec spec) {
        RbdBackend b = RbdBackend.open(spec, RbdOptions.defaults().withConnectTimeout(Duration.ofSeconds(60)))
                .block(WAIT);
        backends.add(b);
        return b;
    }

    private static UbdDevice serve(RbdBackend rbd) {
        DeviceSpec spec = DeviceSpec.builder()
                .capacityBytes(rbd.size())
                .queues(2)
                .depth(64)
                .readOnly(rbd.readOnly())
                .build();
        return Devices.serve(SERVER.get(), spec, rbd);
    }

    @Test
    void fioVerifiesThroughAnRbdImage() throws Exception {
        String name = ceph.createImage("fio", 32 * MIB);
        RbdBackend rbd = open(ceph.client(name));
        UbdDevice dev = serve(rbd);
        try {
            Devices.fioVerify(dev, "rbd", 32 * MIB);
            assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0, "both queues served");
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount());
        } finally {
            Devices.closeAndCheckGone(dev);
        }
        assertEquals(0, rbd.inFlight());
    }

    @Test
    void ext4KeepsItsFilesAcrossAReopen() throws Exception {
        String name = ceph.createImage("ext4", 64 * MIB);
        RbdBackend rbd = open(ceph.admin(name));
        UbdDevice dev = serve(rbd);
        String b = dev.blockDevicePath();
        try {
            Vm.sh(
                            300,
                            "set -e; mkfs.ext4 -q -F " + b + "; mkdir -p /mnt/ubd-rbd; mount " + b + " /mnt/ubd-rbd;"
                                    + " head -c 8M /dev/urandom > /mnt/ubd-rbd/data; sha256sum /mnt/ubd-rbd/data | cut -c1-64"
                                    + " > /tmp/rbd-ext4.sum; umount /mnt/ubd-rbd")
                    .requireSuccess();
        } finally {
            Devices.closeAndCheckGone(dev);
        }
        rbd.close().block(WAIT);
        RbdBackend again = open(ceph.admin(name));
        UbdDevice dev2 = serve(again);
        try {
            Vm.Result r = Vm.sh(
                    300,
                    "set -e; mount " + dev2.blockDevicePath() + " /mnt/ubd-rbd;"
                            + " sha256sum /mnt/ubd-rbd/data | cut -c1-64; umount /mnt/ubd-rbd");
            r.requireSuccess();
            assertEquals(
                    Files.readString(Path.of("/tmp/rbd-ext4.sum")).strip(),
                    r.output().strip());
        } finally {
            Devices.closeAndCheckGone(dev2);
        }
    }

    @Test
    void aSnapshotIsAReadOnlyDeviceWithTheDataOfItsTime() throws Exception {
        String name = ceph.createImage("snap", 16 * MIB);
        RbdBackend rbd = open(ceph.admin(name));
        UbdDevice dev = serve(rbd);
        try {
            Vm.sh(
                            120,
                            "set -e; head -c 4M /dev/urandom > /tmp/rbd-before; dd if=/tmp/rbd-before of="
                                    + dev.blockDevicePath() + " bs=1M oflag=direct status=none; sync")
                    .requireSuccess();
            ceph.rbd("snap", "create", "rbd/" + name + "@before");
            Vm.sh(
                            120,
                            "set -e; head -c 4M /dev/urandom | dd of=" + dev.blockDevicePath()
                                    + " bs=1M oflag=direct iflag=fullblock status=none")
                    .requireSuccess();
        } finally {
            Devices.closeAndCheckGone(dev);
        }
        RbdBackend snap = open(RbdImageSpec.parse("rbd:rbd/" + name + "@before?conf=" + ceph.conf));
        UbdDevice ro = serve(snap);
        try {
            String b = ro.blockDevicePath();
            assertEquals(
                    "1",
                    Vm.sh(30, "blockdev --getro " + b).requireSuccess().output().strip());
            Vm.sh(120, "set -e; cmp -n 4194304 /tmp/rbd-before " + b).requireSuccess();
            Vm.Result w = Vm.sh(60, "dd if=/dev/zero of=" + b + " bs=4k count=1 oflag=direct status=none");
            assertTrue(w.exitCode() != 0, "a write to the snapshot's device is refused: " + w.output());
        } finally {
            Devices.closeAndCheckGone(ro);
        }
    }

    @Test
    void theDeviceFollowsAResizeOfTheImage() throws Exception {
        Vm.assumeFeature(UblkFeature.UPDATE_SIZE);
        String name = ceph.createImage("resize", 16 * MIB);
        RbdBackend rbd = open(ceph.admin(name));
        UbdDevice dev = serve(rbd);
        Disposable follow = rbd.sizeChanges().concatMap(dev::resize).subscribe();
        try {
            ceph.rbd("resize", "--size", "48M", "rbd/" + name);
            Path sectors = Path.of("/sys/block/ublkb" + dev.id() + "/size");
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (Long.parseLong(Files.readString(sectors).strip()) * 512 != 48 * MIB) {
                assertTrue(
                        System.nanoTime() < deadline,
                        "the device did not follow the resize: "
                                + Files.readString(sectors).strip() + " sectors");
                Thread.sleep(200);
            }
            // The new end is the image's: written through the device, read back by Ceph.
            Vm.sh(
                            120,
                            "set -e; head -c 1M /dev/urandom > /tmp/rbd-tail; dd if=/tmp/rbd-tail of="
                                    + dev.blockDevicePath() + " bs=1M seek=47 oflag=direct status=none")
                    .requireSuccess();
        } finally {
            follow.dispose();
            Devices.closeAndCheckGone(dev);
        }
        rbd.close().block(WAIT);
        Path out = Path.of("/tmp/rbd-resized.raw");
        ceph.rbd("export", "rbd/" + name, out.toString());
        assertEquals(48 * MIB, Files.size(out));
        Vm.sh(60, "cmp -i 0:" + 47 * MIB + " /tmp/rbd-tail " + out).requireSuccess();
    }

    /**
     * The OSD killed (SIGKILL, on the host, through scripts/ceph-cluster control) under fio verify and started again
     * some seconds later, well within librados' OSD timeout: requests wait, resume, and every block verifies. Then,
     * with a short OSD timeout, a read while the OSD is down fails at that timeout through the device, and the device
     * serves again once the OSD is back: it never hangs.
     */
    @Test
    void anOsdKilledUnderFioMakesIoWaitAndResumeOrFailAtTheTimeout() throws Exception {
        String name = ceph.createImage("osd", 16 * MIB);
        RbdBackend rbd = open(ceph.admin(name));
        UbdDevice dev = serve(rbd);
        String b = dev.blockDevicePath();
        try {
            // Throttled writes (20 per second per job), so that the OSD dies and comes back during the write phase.
            CompletableFuture<Vm.Result> fio = CompletableFuture.supplyAsync(() -> Vm.sh(
                    600,
                    "fio --name=osd --filename=" + b
                            + " --rw=randwrite --bsrange=4k-64k --iodepth=16 --ioengine=io_uring --direct=1"
                            + " --rate_iops=,20 --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting"
                            + " --numjobs=2 --size=" + 8 * MIB + " --offset_increment=" + 8 * MIB));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (Devices.writesCompleted(dev.id()) < 20) {
                assertTrue(System.nanoTime() < deadline && !fio.isDone(), "fio did not start writing");
                Thread.sleep(100);
            }
            long writesBefore = Devices.writesCompleted(dev.id());
            ceph.stopOsd();
            long stopped = System.nanoTime();
            Thread.sleep(4000);
            assertFalse(fio.isDone(), "fio ended while the OSD was down");
            ceph.startOsd();
            System.out.printf(
                    "rbd: the OSD was down %.1f s under fio (%d writes before)%n",
                    (System.nanoTime() - stopped) / 1e9, writesBefore);
            assertFalse(fio.isDone(), "fio ended before the OSD was back: the outage missed its write phase");
            Vm.Result r = fio.get(600, TimeUnit.SECONDS);
            assertEquals(0, r.exitCode(), r.output());
            assertTrue(r.output().contains("err= 0"), r.output());
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "failed requests");
        } finally {
            Devices.closeAndCheckGone(dev);
        }
        rbd.close().block(WAIT);

        RbdBackend shortTimeout = RbdBackend.open(
                        ceph.admin(name),
                        RbdOptions.defaults()
                                .withConnectTimeout(Duration.ofSeconds(60))
                                .withOsdTimeout(Duration.ofSeconds(3)))
                .block(WAIT);
        backends.add(shortTimeout);
        UbdDevice dev2 = serve(shortTimeout);
        try {
            ceph.stopOsd();
            try {
                // Written above, so its objects exist, and not read since this backend opened: the read needs the OSD.
                long t0 = System.nanoTime();
                Vm.Result read = Vm.sh(
                        120,
                        "dd if=" + dev2.blockDevicePath() + " of=/dev/null bs=64k count=1 iflag=direct status=none");
                double took = (System.nanoTime() - t0) / 1e9;
                System.out.printf("rbd: a read with the OSD down failed after %.1f s%n", took);
                assertTrue(read.exitCode() != 0, "the read failed: " + read.output());
                assertTrue(took >= 2.5 && took < 60, "failed after " + took + " s, at the 3 s OSD timeout");
            } finally {
                ceph.startOsd();
            }
            Vm.sh(120, "dd if=" + dev2.blockDevicePath() + " of=/dev/null bs=1M count=16 iflag=direct status=none")
                    .requireSuccess();
        } finally {
            Devices.closeAndCheckGone(dev2);
        }
    }
}

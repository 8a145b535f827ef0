package dev.reactorubd.targets.file;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import dev.reactorubd.uring.RingBufferTable;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoHandler;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Zero copy (ublk's AUTO_BUF_REG, Linux 6.16) with the file target against the real driver: READ and WRITE requests
 * move between a buffered file and the request's own pages with READ_FIXED/WRITE_FIXED on the queue's ring. Skipped,
 * with the reason, on kernels without AUTO_BUF_REG. The backing files live on the guest's tmpfs (/run).
 */
@DeviceTest
class ZeroCopyDeviceTest {
    private static final Duration WAIT = Devices.WAIT;
    private static final long MIB = 1 << 20;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @BeforeEach
    void needsAutoBufReg() {
        Vm.assumeFeature(UblkFeature.AUTO_BUF_REG);
    }

    private static FileBackend file(String name, long bytes) {
        Vm.sh(30, "mkdir -p /run/ubd-zc").requireSuccess();
        return FileBackend.open(
                Path.of("/run/ubd-zc/" + name + ".img"),
                FileBackend.Options.defaults().createSize(bytes));
    }

    private static UbdDevice serve(UbdServer server, FileBackend file) {
        return Devices.serve(
                server,
                DeviceSpec.builder()
                        .capacityBytes(file.size())
                        .queues(2)
                        .depth(64)
                        .build(),
                file);
    }

    private static long zeroCopied(UbdDevice dev) {
        return dev.queue(0).zeroCopyCount() + dev.queue(1).zeroCopyCount();
    }

    private static long served(UbdDevice dev) {
        return dev.queue(0).completedCount() + dev.queue(1).completedCount();
    }

    @Test
    void fioOfMixedSizesOnTwoQueuesVerifiesWithEveryRequestInPlace() {
        FileBackend file = file("fio", 64 * MIB);
        try {
            UbdDevice dev = serve(SERVER.get(), file);
            try {
                assertTrue(
                        dev.info().has(UblkFeature.AUTO_BUF_REG),
                        "the device was added with AUTO_BUF_REG: " + dev.info());
                Devices.fioVerify(dev, "zero-copy", 48 * MIB);
                long inPlace = zeroCopied(dev);
                long all = served(dev);
                long linked = dev.queue(0).linkedCommitCount() + dev.queue(1).linkedCommitCount();
                System.out.println("zero copy: " + inPlace + " of " + all + " requests served in place, " + linked
                        + " committed by a link");
                assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");
                assertTrue(
                        dev.queue(0).zeroCopyCount() > 0 && dev.queue(1).zeroCopyCount() > 0,
                        "both queues served in place: " + dev.queue(0).zeroCopyCount() + ", "
                                + dev.queue(1).zeroCopyCount());
                // fio's reads and writes all went in place; the rest (at most a FLUSH or a partition-scan read that
                // found its pages unregistered) is small.
                assertTrue(inPlace >= all * 9 / 10, inPlace + " of " + all + " in place");
                // Each went with its commit linked behind its READ_FIXED / WRITE_FIXED (a full queue aside).
                assertTrue(linked >= inPlace * 9 / 10, linked + " of " + inPlace + " committed by a link");
                // What the device holds is what the file holds: the data went to the file, not to a buffer of ours.
                String deviceSum = Vm.sh(120, "sha256sum < " + dev.blockDevicePath())
                        .requireSuccess()
                        .output();
                String fileSum = Vm.sh(120, "sha256sum < " + file.path())
                        .requireSuccess()
                        .output();
                assertEquals(fileSum, deviceSum, "device and file hold the same bytes");
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            file.close().block(WAIT);
            Vm.sh(30, "rm -f " + file.path());
        }
    }

    @Test
    void readsPastTheEndOfAShrunkenFileFailAndTheDeviceGoesOn() {
        // A read that falls short breaks the link: the kernel cancels the commit behind it, and the request must then
        // be committed with its failure, once, and the tag serve again. Shrinking the file under the device makes
        // reads fall short (half a block) or find nothing (0 bytes).
        FileBackend file = file("shrunk", 64 * MIB);
        try {
            UbdDevice dev = serve(SERVER.get(), file);
            try {
                String b = dev.blockDevicePath();
                Vm.sh(60, "dd if=/dev/urandom of=" + b + " bs=1M count=8 oflag=direct status=none")
                        .requireSuccess();
                Vm.sh(30, "truncate -s " + (32 * MIB + 2048) + " " + file.path())
                        .requireSuccess();
                for (long at : new long[] {32 * MIB, 48 * MIB}) {
                    Vm.Result r = Vm.sh(
                            30,
                            "dd if=" + b + " of=/dev/null bs=4096 count=1 skip=" + at / 4096
                                    + " iflag=direct status=none");
                    assertTrue(
                            r.exitCode() != 0 && r.output().contains("Input/output error"),
                            "reading at " + at + " past the end fails with EIO: " + r.output());
                }
                // Every tag goes on: many more reads than tags, over both queues, and each one back intact.
                Vm.sh(
                                120,
                                "set -e; for i in $(seq 1 4); do dd if=" + b + " of=/dev/null bs=64k count=128"
                                        + " iflag=direct status=none; done; dd if=" + b
                                        + " of=/run/ubd-zc/dev8 bs=1M count=8"
                                        + " iflag=direct status=none; head -c 8M " + file.path()
                                        + " > /run/ubd-zc/file8;"
                                        + " cmp /run/ubd-zc/dev8 /run/ubd-zc/file8; rm -f /run/ubd-zc/dev8 /run/ubd-zc/file8")
                        .requireSuccess();
                long failed = dev.queue(0).failedCount() + dev.queue(1).failedCount();
                assertTrue(failed >= 2, "the two reads past the end failed: " + failed);
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            file.close().block(WAIT);
            Vm.sh(30, "rm -f " + file.path());
        }
    }

    @Test
    void ext4WrittenWithZeroCopyReadsBackThroughUserCopy() {
        FileBackend file = file("ext4", 96 * MIB);
        String sums = "/var/tmp/ubd-zc-sums";
        try {
            UbdDevice dev = serve(SERVER.get(), file);
            try {
                String b = dev.blockDevicePath();
                Vm.sh(
                                300,
                                "set -e; mkfs.ext4 -q -F " + b + "; mkdir -p /mnt/ubd-zc; mount " + b + " /mnt/ubd-zc;"
                                        + " for i in 1 2 3 4 5 6 7 8; do head -c $((i * 411000)) /dev/urandom > /mnt/ubd-zc/f$i; done;"
                                        + " (cd /mnt/ubd-zc && sha256sum f* > " + sums + "); umount /mnt/ubd-zc")
                        .requireSuccess();
                assertTrue(zeroCopied(dev) > 0, "requests were served in place");
            } finally {
                Vm.sh(30, "umount /mnt/ubd-zc 2>/dev/null; true");
                Devices.closeAndCheckGone(dev);
            }
            // The same file served by a server that copies: the file system and every file read back intact.
            try (UbdServer copying = UbdServer.builder().zeroCopy(false).build()) {
                UbdDevice copy = serve(copying, file);
                try {
                    assertFalse(copy.info().has(UblkFeature.AUTO_BUF_REG), "zeroCopy(false) adds no AUTO_BUF_REG");
                    Vm.Result r = Vm.sh(
                                    300,
                                    "set -e; mount " + copy.blockDevicePath() + " /mnt/ubd-zc;"
                                            + " cd /mnt/ubd-zc; sha256sum -c " + sums + "; cd /; umount /mnt/ubd-zc")
                            .requireSuccess();
                    assertEquals(
                            8,
                            r.output().lines().filter(l -> l.endsWith(": OK")).count(),
                            r.output());
                    assertEquals(0, zeroCopied(copy), "nothing was served in place");
                } finally {
                    Vm.sh(30, "umount /mnt/ubd-zc 2>/dev/null; true");
                    Devices.closeAndCheckGone(copy);
                }
            }
        } finally {
            file.close().block(WAIT);
            Vm.sh(30, "rm -f " + file.path() + " " + sums);
        }
    }

    @Test
    void aQueueThatGetsNoSlotsOfItsLoopsTableFallsBackToUserCopy() throws Exception {
        // Every slot of the loop's buffer table is taken before the device comes: its queues get none, and every
        // request must still be served, by USER_COPY.
        MultiThreadIoEventLoopGroup loops = new MultiThreadIoEventLoopGroup(1, IoUringIoHandler.newFactory());
        try {
            IoEventLoop loop = (IoEventLoop) loops.next();
            IoRegistration reg = loop.register(new NoopHandle()).get(10, TimeUnit.SECONDS);
            RingBufferTable.Reservation all = loop.submit(() -> RingBufferTable.reserve(reg, RingBufferTable.SLOTS))
                    .get(10, TimeUnit.SECONDS);
            FileBackend file = file("full", 32 * MIB);
            try (UbdServer server = UbdServer.builder().eventLoops(loops).build()) {
                UbdDevice dev = serve(server, file);
                try {
                    assertTrue(
                            dev.info().has(UblkFeature.AUTO_BUF_REG), dev.info().toString());
                    Devices.fioVerify(dev, "zc-fallback", 16 * MIB);
                    assertEquals(0, zeroCopied(dev), "no request was served in place");
                    assertTrue(served(dev) > 0, "requests were served");
                    assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");
                } finally {
                    Devices.closeAndCheckGone(dev);
                }
            } finally {
                file.close().block(WAIT);
                Vm.sh(30, "rm -f " + file.path());
            }
            loop.submit(() -> {
                        all.release();
                        reg.cancel();
                    })
                    .get(10, TimeUnit.SECONDS);
        } finally {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    /** A handle that only holds a registration with a loop. */
    private static final class NoopHandle implements IoUringIoHandle {
        @Override
        public void handle(IoRegistration registration, IoEvent ioEvent) {}

        @Override
        public void close() {}
    }
}

package dev.reactorubd.targets.file;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The file target against the real ublk driver. The backing files live on an ext4 file system of their own (on a loop
 * device over a tmpfs file), since the guest's tmpfs and overlay do not show O_DIRECT or block allocation as a disk
 * would; one test serves a block device (another loop device) instead of a file.
 */
@DeviceTest
class FileDeviceTest {
    private static final Duration WAIT = Devices.WAIT;
    private static final long MIB = 1 << 20;
    private static final String STORE = "/mnt/ubd-store";

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @BeforeAll
    static void startServerAndStore() {
        Vm.sh(
                        120,
                        "set -e; mkdir -p /run/ubd-store " + STORE + "; truncate -s 400M /run/ubd-store/ext4.img;"
                                + " mkfs.ext4 -q -F /run/ubd-store/ext4.img; mount -o loop /run/ubd-store/ext4.img "
                                + STORE)
                .requireSuccess();
    }

    @AfterAll
    static void stopStore() {
        Vm.sh(60, "umount " + STORE + " 2>/dev/null; true");
    }

    private static UbdDevice serve(BlockBackend backend, int queues) {
        return Devices.serve(
                SERVER.get(),
                DeviceSpec.builder()
                        .capacityBytes(backend.size())
                        .queues(queues)
                        .depth(64)
                        .build(),
                backend);
    }

    private static void fioVerify(UbdDevice dev, String name) {
        Devices.fioVerify(dev, name, 48 * MIB);
        assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0, "both queues served IO");
        assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");
    }

    private static void fioVerifiesOnTwoQueues(FileBackend.Options options, String name) {
        Path img = Path.of(STORE, name + ".img");
        FileBackend file = FileBackend.open(img, options.createSize(64 * MIB));
        try {
            UbdDevice dev = serve(file, 2);
            try {
                fioVerify(dev, name);
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            file.close().block(WAIT);
            Vm.sh(30, "rm -f " + img);
        }
    }

    @Test
    void bufferedFileVerifiesWithFioOfMixedSizesOnTwoQueues() {
        fioVerifiesOnTwoQueues(FileBackend.Options.defaults(), "buffered");
    }

    @Test
    void directFileVerifiesWithFioOfMixedSizesOnTwoQueues() {
        fioVerifiesOnTwoQueues(FileBackend.Options.defaults().direct(true), "direct");
    }

    private static void ext4DataEndsUpInTheBackingFile(FileBackend.Options options, String name) {
        Path img = Path.of(STORE, name + "-fs.img");
        FileBackend file = FileBackend.open(img, options.createSize(96 * MIB));
        String sums = "/var/tmp/ubd-" + name + "-sums";
        String deviceSum;
        try {
            UbdDevice dev = serve(file, 2);
            try {
                String b = dev.blockDevicePath();
                Vm.sh(
                                300,
                                "set -e; mkfs.ext4 -q -F " + b + "; mkdir -p /mnt/ubd; mount " + b + " /mnt/ubd;"
                                        + " for i in 1 2 3 4 5 6 7 8 9 10; do head -c $((i * 311000)) /dev/urandom > /mnt/ubd/f$i; done;"
                                        + " (cd /mnt/ubd && sha256sum f* > " + sums + "); umount /mnt/ubd")
                        .requireSuccess();
                deviceSum =
                        Vm.sh(120, "sha256sum < " + b).requireSuccess().output().trim();
            } finally {
                Vm.sh(30, "umount /mnt/ubd 2>/dev/null; true");
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            file.close().block(WAIT);
        }
        // The device is gone: what it wrote must be in the file itself, past every cache of this process. Remount the
        // store so that the file is read back from its own disk, then compare byte for byte.
        Vm.sh(60, "set -e; umount " + STORE + "; mount -o loop /run/ubd-store/ext4.img " + STORE)
                .requireSuccess();
        String fileSum =
                Vm.sh(120, "sha256sum < " + img).requireSuccess().output().trim();
        assertEquals(deviceSum, fileSum, "the backing file holds exactly what the device held");
        Vm.Result direct = Vm.sh(
                        120,
                        "set -e; mkdir -p /mnt/img; mount -o loop,ro " + img + " /mnt/img;"
                                + " cd /mnt/img; sha256sum -c " + sums + "; cd /; umount /mnt/img")
                .requireSuccess();
        assertEquals(10, direct.output().lines().filter(l -> l.endsWith(": OK")).count(), direct.output());
        Vm.sh(30, "rm -f " + img);
    }

    @Test
    void ext4OnABufferedFileLandsInTheFileByteForByte() {
        ext4DataEndsUpInTheBackingFile(FileBackend.Options.defaults(), "buffered");
    }

    @Test
    void ext4OnADirectFileLandsInTheFileByteForByte() {
        ext4DataEndsUpInTheBackingFile(FileBackend.Options.defaults().direct(true), "direct");
    }

    private static long allocatedBlocks(Path file) {
        return Long.parseLong(
                Vm.sh(30, "stat -c %b " + file).requireSuccess().output().trim());
    }

    @Test
    void discardShrinksTheFileAndZeroedRangesReadZeros() {
        Path img = Path.of(STORE, "discard.img");
        FileBackend file = FileBackend.open(img, FileBackend.Options.defaults().createSize(64 * MIB));
        try {
            UbdDevice dev = serve(file, 1);
            try {
                String b = dev.blockDevicePath();
                Vm.sh(120, "dd if=/dev/urandom of=" + b + " bs=1M count=64 oflag=direct status=none")
                        .requireSuccess();
                Vm.sh(30, "sync").requireSuccess();
                long full = allocatedBlocks(img);
                assertTrue(full >= 64 * 2048 - 64, "64 MiB allocated: " + full);
                Vm.sh(60, "blkdiscard -o 0 -l 33554432 " + b).requireSuccess();
                long after = allocatedBlocks(img);
                assertTrue(after <= full - 32 * 2048 + 64, "32 MiB freed: " + full + " -> " + after);
                Vm.Result zeros = Vm.sh(60, "cmp -n 33554432 " + b + " /dev/zero && echo same");
                assertTrue(zeros.output().contains("same"), "discarded range reads zeros: " + zeros.output());
                // Zero-out (WRITE_ZEROES) in the second half, which still holds random data.
                Vm.sh(60, "blkdiscard -z -o 41943040 -l 8388608 " + b).requireSuccess();
                Vm.Result z = Vm.sh(60, "cmp -n 8388608 -i 41943040:0 " + b + " /dev/zero && echo same");
                assertTrue(z.output().contains("same"), "zeroed range reads zeros: " + z.output());
                Vm.Result kept = Vm.sh(60, "cmp -n 1048576 -i 34603008:0 " + b + " /dev/zero; echo rc=$?");
                assertTrue(kept.output().contains("rc=1"), "data outside the ranges is kept: " + kept.output());
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            file.close().block(WAIT);
            Vm.sh(30, "rm -f " + img);
        }
    }

    @Test
    void aBlockDeviceAsTheStoreVerifiesAndDiscards() {
        String loop = Vm.sh(
                        60,
                        "set -e; truncate -s 64M /run/ubd-store/blk.img;" + " losetup -f --show /run/ubd-store/blk.img")
                .requireSuccess()
                .output()
                .trim();
        try {
            FileBackend dev0 = FileBackend.open(
                    Path.of(loop), FileBackend.Options.defaults().direct(true));
            try {
                assertTrue(dev0.isBlockDevice());
                assertEquals(64 * MIB, dev0.size(), "size from BLKGETSIZE64");
                UbdDevice dev = serve(dev0, 2);
                try {
                    fioVerify(dev, "blockdev");
                    // BLOCK_URING_CMD_DISCARD reaches the loop device, which punches the hole in its tmpfs file.
                    Vm.sh(30, "sync").requireSuccess();
                    long before = allocatedBlocks(Path.of("/run/ubd-store/blk.img"));
                    Vm.sh(60, "blkdiscard " + dev.blockDevicePath()).requireSuccess();
                    long after = allocatedBlocks(Path.of("/run/ubd-store/blk.img"));
                    assertTrue(after < before / 2, "the loop device's file shrank: " + before + " -> " + after);
                } finally {
                    Devices.closeAndCheckGone(dev);
                }
            } finally {
                dev0.close().block(WAIT);
            }
        } finally {
            Vm.sh(30, "losetup -d " + loop + "; rm -f /run/ubd-store/blk.img");
        }
    }
}

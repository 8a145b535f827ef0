package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * UPDATE_SIZE on a live device (Linux 6.16+): the device grows and shrinks while it serves, data below the old end
 * stays, IO beyond it reaches the backend; sizes the backend cannot serve, sizes that are not whole blocks, devices
 * without a disk (where 6.18 would oops) and devices added without the feature are refused with typed errors before
 * the kernel sees them, and the device keeps serving.
 */
@DeviceTest
class ResizeDeviceTest {
    private static final long MIB = 1 << 20;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @BeforeEach
    void needsUpdateSize() {
        Vm.assumeFeature(UblkFeature.UPDATE_SIZE);
    }

    private static long sizeOf(UbdDevice dev) {
        long blockdev = Long.parseLong(Vm.run(60, "blockdev", "--getsize64", dev.blockDevicePath())
                .requireSuccess()
                .output()
                .strip());
        long sysfs = Long.parseLong(Vm.sh(30, "cat /sys/block/ublkb" + dev.id() + "/size")
                        .requireSuccess()
                        .output()
                        .strip())
                * 512;
        assertEquals(blockdev, sysfs, "blockdev and sysfs agree");
        long params =
                SERVER.get().control().getParams(dev.id()).block(Devices.WAIT).capacityBytes();
        assertEquals(blockdev, params, "GET_PARAMS agrees");
        return blockdev;
    }

    @Test
    void aLiveDeviceGrowsServesBeyondItsOldEndKeepsItsDataAndShrinks() throws Exception {
        MemoryBackend memory = new MemoryBackend(64 * MIB);
        UbdDevice dev = Devices.serve(
                SERVER.get(),
                DeviceSpec.builder().capacityBytes(32 * MIB).queues(2).build(),
                memory);
        try {
            assertTrue(dev.info().has(UblkFeature.UPDATE_SIZE), "the server asked for UPDATE_SIZE: " + dev.info());
            assertEquals(32 * MIB, sizeOf(dev));
            Path dir = Files.createTempDirectory("ubd-resize");
            String d = dev.blockDevicePath();
            Vm.sh(
                            60,
                            "head -c 4194304 /dev/urandom > " + dir + "/low; head -c 4194304 /dev/urandom > " + dir
                                    + "/high; dd if=" + dir + "/low of=" + d
                                    + " bs=64k seek=448 oflag=direct status=none")
                    .requireSuccess(); // the last 4 MiB below the old end
            // Beyond the old end, nothing can be written yet.
            assertTrue(
                    Vm.sh(60, "dd if=" + dir + "/high of=" + d + " bs=64k seek=768 oflag=direct status=none")
                                    .exitCode()
                            != 0,
                    "a write beyond the end fails before the resize");

            dev.resize(64 * MIB).block(Devices.WAIT);

            assertEquals(64 * MIB, sizeOf(dev));
            Vm.sh(60, "dd if=" + dir + "/high of=" + d + " bs=64k seek=768 oflag=direct status=none")
                    .requireSuccess();
            Vm.sh(
                            60,
                            "dd if=" + d + " of=" + dir + "/high.back bs=64k skip=768 count=64 iflag=direct status=none"
                                    + " && cmp " + dir + "/high " + dir + "/high.back")
                    .requireSuccess();
            Vm.sh(
                            60,
                            "dd if=" + d + " of=" + dir + "/low.back bs=64k skip=448 count=64 iflag=direct status=none"
                                    + " && cmp " + dir + "/low " + dir + "/low.back")
                    .requireSuccess();
            // The grown part under fio with verify: only beyond the old end.
            Vm.Result fio = Vm.sh(
                    600,
                    "fio --name=grown --filename=" + d + " --offset=" + 36 * MIB + " --size="
                            + 28 * MIB + " --rw=randwrite --bsrange=4k-64k --iodepth=16 --ioengine=io_uring --direct=1"
                            + " --verify=crc32c --do_verify=1 --verify_fatal=1");
            assertEquals(0, fio.exitCode(), fio.output());
            assertTrue(fio.output().contains("err= 0"), fio.output());

            dev.resize(16 * MIB).block(Devices.WAIT);
            assertEquals(16 * MIB, sizeOf(dev));
            assertTrue(
                    Vm.sh(60, "dd if=/dev/zero of=" + d + " bs=64k seek=256 count=1 oflag=direct status=none")
                                    .exitCode()
                            != 0,
                    "a write beyond the new, smaller end fails");
            Vm.run(60, "rm", "-rf", dir.toString());
        } finally {
            Devices.closeAndCheckGone(dev);
            memory.close().block(Devices.WAIT);
        }
    }

    @Test
    void invalidSizesAreRefusedWithTypedErrorsAndTheDeviceKeepsServing() {
        MemoryBackend memory = new MemoryBackend(32 * MIB);
        UbdDevice dev = Devices.serve(
                SERVER.get(),
                DeviceSpec.builder()
                        .capacityBytes(16 * MIB)
                        .logicalBlockSize(4096)
                        .build(),
                memory);
        try {
            UbdException beyond = assertThrows(
                    UbdException.class, () -> dev.resize(32 * MIB + 4096).block(Devices.WAIT));
            assertEquals(Errno.EINVAL, beyond.errno());
            assertTrue(beyond.getMessage().contains("backend"), beyond.getMessage());
            UbdException partial = assertThrows(
                    UbdException.class, () -> dev.resize(16 * MIB + 512).block(Devices.WAIT));
            assertEquals(Errno.EINVAL, partial.errno());
            assertTrue(partial.getMessage().contains("4096"), partial.getMessage());
            assertEquals(
                    Errno.EINVAL,
                    assertThrows(UbdException.class, () -> dev.resize(0).block(Devices.WAIT))
                            .errno());
            assertEquals(16 * MIB, sizeOf(dev), "the size did not change");
            Vm.sh(
                            60,
                            "dd if=/dev/urandom of=/tmp/r bs=4k count=16 status=none && dd if=/tmp/r of="
                                    + dev.blockDevicePath() + " bs=4k seek=100 oflag=direct status=none && dd if="
                                    + dev.blockDevicePath()
                                    + " of=/tmp/r.back bs=4k skip=100 count=16 iflag=direct status=none"
                                    + " && cmp /tmp/r /tmp/r.back")
                    .requireSuccess();
        } finally {
            Devices.closeAndCheckGone(dev);
            memory.close().block(Devices.WAIT);
        }
    }

    @Test
    void devicesWithoutADiskOrWithoutTheFeatureAreRefusedBeforeTheKernelSeesTheCommand() {
        UbdControl control = SERVER.get().control();
        // Added but never started: no disk. 6.18 would dereference NULL on UPDATE_SIZE here.
        DeviceInfo added = control.addDevice(DeviceSpec.builder()
                        .capacityBytes(16 * MIB)
                        .feature(UblkFeature.UPDATE_SIZE)
                        .build())
                .block(Devices.WAIT);
        try {
            assertEquals(
                    UblkDevState.DEAD,
                    control.deviceInfo(added.id()).block(Devices.WAIT).state());
            UbdDeviceStateException e = assertThrows(
                    UbdDeviceStateException.class,
                    () -> control.updateSize(added.id(), 32 * MIB).block(Devices.WAIT));
            assertTrue(e.getMessage().contains("DEAD"), e.getMessage());
        } finally {
            control.deleteDevice(added.id()).block(Devices.WAIT);
        }
        DeviceInfo without = control.addDevice(
                        DeviceSpec.builder().capacityBytes(16 * MIB).build())
                .block(Devices.WAIT);
        try {
            Throwable e = assertThrows(
                    RuntimeException.class,
                    () -> control.updateSize(without.id(), 32 * MIB).block(Devices.WAIT));
            assertInstanceOf(UbdUnsupportedException.class, e);
            assertTrue(e.getMessage().contains("without UPDATE_SIZE"), e.getMessage());
        } finally {
            control.deleteDevice(without.id()).block(Devices.WAIT);
        }
        assertTrue(
                Vm.sh(30, "dmesg | grep -c 'BUG:\\|Oops' || true")
                        .output()
                        .strip()
                        .equals("0"),
                "no oops in the kernel log");
    }
}

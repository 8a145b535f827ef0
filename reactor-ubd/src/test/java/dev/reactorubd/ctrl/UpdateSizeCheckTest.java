package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.sys.UblkCtrlCmd;
import org.junit.jupiter.api.Test;

/**
 * What {@link UbdControl#updateSize} refuses before sending UPDATE_SIZE, which 6.18 does not check itself (and oopses
 * on for a device without a disk); and how a QUIESCE_DEV that timed out is reported.
 */
class UpdateSizeCheckTest {
    private static final long KERNEL_618 = 0x7fffL;
    private static final long KERNEL_612 = 0x1feL;
    private static final long WITH_UPDATE_SIZE = UblkFeature.USER_COPY.mask() | UblkFeature.UPDATE_SIZE.mask();

    private static DeviceInfo device(UblkDevState state, long flags) {
        return new DeviceInfo(7, 1, 128, state, 512 << 10, 1234, flags, 0, 0);
    }

    @Test
    void aLiveDeviceWithTheFeatureMayBeResizedToAMultipleOfItsBlockSize() {
        for (UblkDevState s : new UblkDevState[] {UblkDevState.LIVE, UblkDevState.QUIESCED, UblkDevState.FAIL_IO}) {
            assertNull(UbdControl.checkUpdateSize(KERNEL_618, device(s, WITH_UPDATE_SIZE), 4096, 128L << 20), "" + s);
        }
        assertNull(UbdControl.checkUpdateSize(KERNEL_618, device(UblkDevState.LIVE, WITH_UPDATE_SIZE), 512, 512));
    }

    @Test
    void aKernelWithoutUpdateSizeIsUnsupported() {
        UbdException e =
                UbdControl.checkUpdateSize(KERNEL_612, device(UblkDevState.LIVE, WITH_UPDATE_SIZE), 512, 1 << 20);
        assertInstanceOf(UbdUnsupportedException.class, e);
        assertTrue(e.getMessage().contains("6.16"), e.getMessage());
        assertInstanceOf(
                UbdUnsupportedException.class,
                UbdControl.checkUpdateSize(0, device(UblkDevState.LIVE, WITH_UPDATE_SIZE), 512, 1 << 20));
    }

    @Test
    void aDeviceAddedWithoutTheFlagIsUnsupportedEvenOnAKernelThatHasIt() {
        UbdException e = UbdControl.checkUpdateSize(
                KERNEL_618, device(UblkDevState.LIVE, UblkFeature.USER_COPY.mask()), 512, 1 << 20);
        assertInstanceOf(UbdUnsupportedException.class, e);
        assertTrue(e.getMessage().contains("DeviceSpec feature UPDATE_SIZE"), e.getMessage());
    }

    @Test
    void aDeviceWithoutADiskIsRefusedBeforeTheKernelSeesIt() {
        for (UblkDevState s : new UblkDevState[] {UblkDevState.DEAD, UblkDevState.UNKNOWN}) {
            UbdException e = UbdControl.checkUpdateSize(KERNEL_618, device(s, WITH_UPDATE_SIZE), 512, 1 << 20);
            assertInstanceOf(UbdDeviceStateException.class, e, "" + s);
            assertTrue(e.getMessage().contains("start it first"), e.getMessage());
        }
    }

    @Test
    void aSizeThatIsNotAPositiveMultipleOfTheBlockSizeIsInvalid() {
        DeviceInfo live = device(UblkDevState.LIVE, WITH_UPDATE_SIZE);
        for (long bad : new long[] {0, -4096, 4096 + 512, 100}) {
            UbdException e = UbdControl.checkUpdateSize(KERNEL_618, live, 4096, bad);
            assertInstanceOf(UbdException.class, e, "" + bad);
            assertEquals(Errno.EINVAL, e.errno(), "" + bad);
            assertTrue(e.getMessage().contains("multiple"), e.getMessage());
        }
        assertTrue(UbdControl.checkUpdateSize(KERNEL_618, live, 4096, 10_000)
                .getMessage()
                .contains("8192"));
    }

    @Test
    void aQuiesceThatTimedOutIsATimeoutNotABusyDevice() {
        UbdException e = UbdControl.errorFor(UblkCtrlCmd.QUIESCE_DEV, "QUIESCE_DEV of device 7", -Errno.EBUSY);
        assertInstanceOf(UbdTimeoutException.class, e);
        assertTrue(e.getMessage().contains("stop it"), e.getMessage());
    }
}

package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.sys.UblkCtrlCmd;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** How kernel answers become typed errors that say what to do. */
class ControlErrorsTest {

    @Test
    void missingControlDeviceSaysLoadTheModule() {
        UbdModuleNotLoadedException e = assertThrows(
                UbdModuleNotLoadedException.class,
                () -> UbdControl.open(Path.of("/dev/ublk-control-does-not-exist"), Duration.ofSeconds(1)));
        assertTrue(e.getMessage().contains("modprobe ublk_drv"), e.getMessage());
        assertEquals(2, e.errno());
    }

    @Test
    void errnoMapsToTypedExceptions() {
        assertError(UbdPermissionException.class, UblkCtrlCmd.ADD_DEV, -1, "CAP_SYS_ADMIN");
        assertError(UbdDeviceBusyException.class, UblkCtrlCmd.DEL_DEV, -16, "in use");
        assertError(UbdDeviceBusyException.class, UblkCtrlCmd.ADD_DEV, -17, "id is taken");
        assertError(UbdDeviceBusyException.class, UblkCtrlCmd.SET_PARAMS, -13, "not started");
        assertError(UbdNoSuchDeviceException.class, UblkCtrlCmd.GET_DEV_INFO, -19, "no such device");
        assertError(UbdUnsupportedException.class, UblkCtrlCmd.DEL_DEV_ASYNC, -95, "newer");
        UbdException e = assertError(UbdException.class, UblkCtrlCmd.SET_PARAMS, -22, "EINVAL");
        assertEquals("EINVAL", e.errnoName());
        // A recovery whose server died before any queue was ready leaves a device Linux 6.12 takes over no more.
        assertError(
                UbdDeviceStateException.class,
                UblkCtrlCmd.START_USER_RECOVERY,
                -22,
                "died before any of its queues was ready");
    }

    private static UbdException assertError(Class<? extends UbdException> type, int op, int res, String words) {
        UbdException e = UbdControl.errorFor(op, UblkCtrlCmd.name(op) + " of device 7", res);
        assertInstanceOf(type, e);
        assertEquals(-res, e.errno());
        assertTrue(e.getMessage().contains(words), e.getMessage());
        assertTrue(e.getMessage().startsWith(UblkCtrlCmd.name(op) + " of device 7"), e.getMessage());
        return e;
    }
}

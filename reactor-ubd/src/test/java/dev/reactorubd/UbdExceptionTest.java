package dev.reactorubd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.reactorubd.UbdException.Kind;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Each public exception names its kind, and the errno is kept positive whichever sign it came with. */
class UbdExceptionTest {
    @Test
    void eachPublicExceptionNamesItsKind() {
        Map<UbdException, Kind> cases = Map.ofEntries(
                Map.entry(new UbdException("x"), Kind.OTHER),
                Map.entry(new UbdModuleNotLoadedException("x"), Kind.MODULE_NOT_LOADED),
                Map.entry(new UbdPermissionException("x", Errno.EPERM), Kind.PERMISSION),
                Map.entry(new UbdMemoryLockException("x", Errno.ENOMEM, 8, 8), Kind.PERMISSION),
                Map.entry(new UbdDeviceBusyException("x", Errno.EBUSY), Kind.BUSY),
                Map.entry(new UbdNoSuchDeviceException("x", Errno.ENODEV, null), Kind.NO_SUCH_DEVICE),
                Map.entry(new UbdDeviceStateException("x"), Kind.DEVICE_STATE),
                Map.entry(new UbdUnsupportedException("x"), Kind.UNSUPPORTED),
                Map.entry(new UbdTimeoutException("x"), Kind.TIMEOUT),
                Map.entry(new UbdClosedException("x"), Kind.CLOSED),
                Map.entry(new InvalidDeviceSpecException("queues", "x"), Kind.INVALID_ARGUMENT),
                Map.entry(new UbdIoException(Errno.ENOSPC, "x"), Kind.IO));
        cases.forEach((e, kind) -> assertSame(kind, e.kind(), e.getClass().getSimpleName()));
        assertEquals(Kind.values().length, cases.values().stream().distinct().count(), "every kind has a case");
    }

    @Test
    void theErrnoIsPositiveWhicheverSignItCameWith() {
        UbdException negative = new UbdDeviceBusyException("x", -Errno.EBUSY);
        assertEquals(Errno.EBUSY, negative.errno());
        assertEquals("EBUSY", negative.errnoName());
        assertEquals("", new UbdException("x").errnoName());
    }
}

package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import org.junit.jupiter.api.Test;

/** The range and read-only checks every backend shares. */
class RequestChecksTest {
    private static final long SIZE = 1 << 20;

    @Test
    void rangesInsideThePassAndEveryOtherIsEinval() {
        assertNull(RequestChecks.outOfRange(SIZE, 0, SIZE, "s"));
        assertNull(RequestChecks.outOfRange(SIZE, SIZE, 0, "s"), "an empty range at the end");
        assertNull(RequestChecks.outOfRange(SIZE, SIZE - 512, 512, "s"));
        assertNull(RequestChecks.checkRange(SIZE, 4096, 4096, "s"));
        long[][] bad = {
            {SIZE - 511, 512},
            {SIZE + 1, 0},
            {-1, 1},
            {0, -1},
            {0, SIZE + 1},
            {Long.MAX_VALUE - 10, 100} /* offset + length wraps to a negative */,
            {1, Long.MAX_VALUE}
        };
        for (long[] r : bad) {
            UbdIoException e = RequestChecks.outOfRange(SIZE, r[0], r[1], "store 7");
            assertTrue(e != null && e.errno() == Errno.EINVAL, r[0] + "+" + r[1]);
            assertTrue(
                    e.getMessage().contains(r[0] + "+" + r[1]) && e.getMessage().contains("store 7"), e.getMessage());
        }
    }

    @Test
    void anUnknownSizeRefusesOnlyNegatives() {
        assertNull(RequestChecks.outOfRange(BlockBackend.UNKNOWN_SIZE, Long.MAX_VALUE - 1, 1, "s"));
        assertEquals(
                Errno.EINVAL,
                RequestChecks.outOfRange(BlockBackend.UNKNOWN_SIZE, -1, 1, "s").errno());
    }

    @Test
    void aChangeToAReadOnlyStoreIsErofsSayingWhatToDo() {
        UbdIoException e = RequestChecks.readOnly("a write", "file(x)");
        assertEquals(Errno.EROFS, e.errno());
        assertTrue(
                e.getMessage().contains("a write")
                        && e.getMessage().contains("file(x)")
                        && e.getMessage().contains("read-only DeviceSpec"),
                e.getMessage());
    }
}

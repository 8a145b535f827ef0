package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import org.junit.jupiter.api.Test;

/** What {@link UbdDevice#resize} refuses because of the backend, before the kernel is asked. */
class ResizeCheckTest {

    @Test
    void aBackendServesAnySizeUpToItsOwn() {
        assertNull(UbdDevice.checkBackendSize(3, 64 << 20, 64 << 20));
        assertNull(UbdDevice.checkBackendSize(3, 64 << 20, 4096));
    }

    @Test
    void aBackendThatDoesNotKnowItsSizeLeavesTheSizeToTheCaller() {
        assertNull(UbdDevice.checkBackendSize(3, BlockBackend.UNKNOWN_SIZE, 1L << 40));
    }

    @Test
    void aSizeBeyondTheBackendIsRefusedSayingWhatToDo() {
        UbdException e = UbdDevice.checkBackendSize(3, 64 << 20, (64 << 20) + 4096);
        assertEquals(Errno.EINVAL, e.errno());
        assertTrue(
                e.getMessage().contains("67108864 bytes") && e.getMessage().contains("serve a larger backend"),
                e.getMessage());
    }

    @Test
    void aSizeOfZeroOrLessIsRefused() {
        assertEquals(Errno.EINVAL, UbdDevice.checkBackendSize(3, 64 << 20, 0).errno());
        assertEquals(
                Errno.EINVAL,
                UbdDevice.checkBackendSize(3, BlockBackend.UNKNOWN_SIZE, -512).errno());
    }
}

package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdMemoryLockException;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.uring.Libc;
import org.junit.jupiter.api.Test;

/**
 * What a refused {@code mlockall} turns into: a typed error that names RLIMIT_MEMLOCK, its values and how to raise it.
 * (The refusal itself, from a real kernel with the limit lowered, is {@code MemoryPressureDeviceTest}'s.)
 */
class MemoryLockTest {
    @Test
    void epermSaysTheLimitIsZeroAndHowToRaiseIt() {
        UbdException e = MemoryLock.failure(Errno.EPERM, 0, 0, "");
        UbdMemoryLockException m = assertInstanceOf(UbdMemoryLockException.class, e);
        assertInstanceOf(UbdPermissionException.class, e, "the CLI's exit status 4");
        assertEquals(Errno.EPERM, m.errno());
        assertEquals(0, m.softLimit());
        assertTrue(
                e.getMessage().contains("EPERM")
                        && e.getMessage().contains("RLIMIT_MEMLOCK is 0 (hard limit 0)")
                        && e.getMessage().contains("CAP_IPC_LOCK")
                        && e.getMessage().contains("ulimit -l unlimited")
                        && e.getMessage().contains("LimitMEMLOCK=infinity"),
                e.getMessage());
    }

    @Test
    void enomemNamesTheLimitAndWhatTheProcessMaps() {
        UbdException e = MemoryLock.failure(Errno.ENOMEM, 8L << 20, Libc.RLIM_INFINITY, "4194304 kB");
        UbdMemoryLockException m = assertInstanceOf(UbdMemoryLockException.class, e);
        assertEquals(8L << 20, m.softLimit());
        assertEquals(Libc.RLIM_INFINITY, m.hardLimit());
        assertTrue(
                e.getMessage().contains("ENOMEM")
                        && e.getMessage().contains("RLIMIT_MEMLOCK is 8192 KiB (hard " + "limit unlimited)")
                        && e.getMessage().contains("VmSize 4194304 kB")
                        && e.getMessage().contains("ulimit -l unlimited"),
                e.getMessage());
    }

    @Test
    void theLimitIsReadFromTheKernel() {
        long[] limit = {-2, -2};
        assertEquals(0, Libc.getrlimit(Libc.RLIMIT_MEMLOCK, limit));
        assertTrue(limit[0] >= 0 || limit[0] == Libc.RLIM_INFINITY, "soft " + limit[0]);
        assertTrue(Long.compareUnsigned(limit[0], limit[1]) <= 0, "soft " + limit[0] + " <= hard " + limit[1]);
        assertTrue(Long.parseLong(MemoryLock.statusField("VmSize").split(" ")[0]) > 0, "VmSize is read");
    }
}

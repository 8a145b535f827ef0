package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdMemoryLockException;
import dev.reactorubd.uring.Libc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Locks the whole process's memory for {@link UbdServer.Builder#lockMemory(boolean)}: {@code mlockall(MCL_CURRENT |
 * MCL_FUTURE)}, so that no page of the server (heap, code, stacks, direct buffers, mapped libraries) is ever reclaimed
 * and has to be read back, from swap or from a file system that may sit on a device this process serves, while the
 * machine is short of memory. See docs/memory-pressure.md for the JVM settings that go with it.
 */
final class MemoryLock {
    private static final Logger LOG = LoggerFactory.getLogger(MemoryLock.class);

    private MemoryLock() {}

    /**
     * Locks every page mapped now and later. Blocks while the kernel faults in every mapped page (the JVM's committed
     * heap, its libraries and the JDK's modules file: a second or more, longer under emulation). Calling it again is
     * harmless. The lock lasts as long as the process: closing a server does not undo it, since other servers of the
     * process may rely on it.
     *
     * @throws UbdMemoryLockException when the kernel refuses (the message names RLIMIT_MEMLOCK and how to raise it)
     */
    static void lockAll() {
        long start = System.nanoTime();
        int r = Libc.mlockall(Libc.MCL_CURRENT | Libc.MCL_FUTURE);
        if (r < 0) {
            long[] limit = {Libc.RLIM_INFINITY, Libc.RLIM_INFINITY};
            Libc.getrlimit(Libc.RLIMIT_MEMLOCK, limit); // only for the message: on failure it says "unlimited"
            throw failure(-r, limit[0], limit[1], statusField("VmSize"));
        }
        LOG.info(
                "process memory locked (mlockall MCL_CURRENT|MCL_FUTURE) in {} ms: {} locked",
                (System.nanoTime() - start) / 1_000_000,
                statusField("VmLck"));
    }

    /**
     * The error for an {@code mlockall} refusal: what the kernel answered, the limit and what to do.
     *
     * @param errno the positive errno mlockall answered
     * @param soft the soft RLIMIT_MEMLOCK, {@link Libc#RLIM_INFINITY} for none
     * @param hard the hard RLIMIT_MEMLOCK
     * @param vmSize the process's VmSize line of /proc/self/status, or "" when unknown
     */
    static UbdException failure(int errno, long soft, long hard, String vmSize) {
        String limits = "RLIMIT_MEMLOCK is " + bytes(soft) + " (hard limit " + bytes(hard) + ")";
        String raise = "raise it (ulimit -l unlimited in the shell that starts the JVM, LimitMEMLOCK=infinity in a "
                + "systemd unit, or a memlock line in /etc/security/limits.conf; the hard limit only as root) or give "
                + "the process CAP_IPC_LOCK (run it as root), or serve without locking memory";
        String what = switch (errno) {
            case Errno.EPERM -> limits + " and the process lacks CAP_IPC_LOCK, so it may lock nothing; " + raise;
            case Errno.ENOMEM ->
                limits + ", less than the process maps"
                        + (vmSize.isEmpty()
                                ? ""
                                : " (VmSize " + vmSize
                                        + ", which counts the JVM's reserved heap, metaspace and code cache)")
                        + "; " + raise
                        + ". With CAP_IPC_LOCK or no limit, ENOMEM means the machine has too little free memory to hold "
                        + "the process: lower -Xmx";
            default -> limits + "; " + raise;
        };
        return new UbdMemoryLockException(
                "cannot lock the process's memory: mlockall(MCL_CURRENT|MCL_FUTURE) " + "answered "
                        + Errno.describe(errno) + ": " + what,
                errno,
                soft,
                hard);
    }

    private static String bytes(long limit) {
        if (limit == Libc.RLIM_INFINITY) {
            return "unlimited";
        }
        if (limit == 0) {
            return "0";
        }
        return limit % 1024 == 0 ? (limit / 1024) + " KiB" : limit + " bytes";
    }

    /** A field of /proc/self/status (e.g. "VmLck" to "1234 kB"), or "" when it cannot be read. */
    static String statusField(String name) {
        try {
            return Files.readAllLines(Path.of("/proc/self/status")).stream()
                    .filter(l -> l.startsWith(name + ":"))
                    .map(l -> l.substring(name.length() + 1).strip())
                    .findFirst()
                    .orElse("");
        } catch (IOException e) {
            return "";
        }
    }
}

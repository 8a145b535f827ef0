package dev.reactorubd;

/**
 * The kernel refused to lock the process's memory ({@code mlockall}, asked for with
 * {@code UbdServer.Builder.lockMemory(true)}): EPERM when {@code RLIMIT_MEMLOCK} is 0 and the process lacks
 * CAP_IPC_LOCK, ENOMEM when the process maps more than {@code RLIMIT_MEMLOCK} allows. The message names the limit, what
 * the process maps, and how to raise the limit. Nothing is locked when it is thrown.
 */
public class UbdMemoryLockException extends UbdPermissionException {
    private static final long serialVersionUID = 1L;
    /** The soft RLIMIT_MEMLOCK in bytes when the lock was refused, -1 for unlimited. */
    private final long softLimit;
    /** The hard RLIMIT_MEMLOCK in bytes when the lock was refused, -1 for unlimited. */
    private final long hardLimit;

    /**
     * An error with a message, the errno mlockall answered and the process's RLIMIT_MEMLOCK.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.ENOMEM}
     * @param softLimit the soft RLIMIT_MEMLOCK in bytes, -1 for unlimited
     * @param hardLimit the hard RLIMIT_MEMLOCK in bytes, -1 for unlimited
     */
    public UbdMemoryLockException(String message, int errno, long softLimit, long hardLimit) {
        super(message, errno);
        this.softLimit = softLimit;
        this.hardLimit = hardLimit;
    }

    /** {@return the soft RLIMIT_MEMLOCK in bytes when the lock was refused, -1 for unlimited} */
    public long softLimit() {
        return softLimit;
    }

    /** {@return the hard RLIMIT_MEMLOCK in bytes when the lock was refused, -1 for unlimited} */
    public long hardLimit() {
        return hardLimit;
    }
}

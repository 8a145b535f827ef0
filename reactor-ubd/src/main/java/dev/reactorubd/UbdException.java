package dev.reactorubd;


/**
 * The root of every error this library signals. Each carries the errno the kernel answered (0 when the error did
 * not come from the kernel) and a message that says what failed and what to do about it.
 *
 * <p>Subclasses name the cases a caller may want to handle apart: {@link UbdModuleNotLoadedException},
 * {@link UbdPermissionException}, {@link UbdDeviceBusyException}, {@link UbdNoSuchDeviceException},
 * {@link UbdUnsupportedException}, {@link UbdTimeoutException}, {@link UbdClosedException} and
 * {@link InvalidDeviceSpecException}.
 */
public class UbdException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    /** The positive errno the kernel answered, or 0. */
    private final int errno;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdException(String message) {
        this(message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdException(String message, int errno) {
        this(message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdException(String message, int errno, Throwable cause) {
        super(message, cause);
        this.errno = Math.abs(errno);
    }

    /** {@return the positive errno the kernel answered, or 0} */
    public int errno() {
        return errno;
    }

    /** {@return {@code "EBUSY"} and the like, or {@code ""} when there is no errno} */
    public String errnoName() {
        return errno == 0 ? "" : Errno.name(errno);
    }
}

package dev.reactorubd;

import java.util.Objects;

/**
 * The root of every error this library signals. Each carries the errno the kernel answered (0 when the error did
 * not come from the kernel) and a message that says what failed and what to do about it.
 *
 * <p>Subclasses name the cases a caller may want to handle apart: {@link UbdModuleNotLoadedException},
 * {@link UbdPermissionException}, {@link UbdDeviceBusyException}, {@link UbdNoSuchDeviceException},
 * {@link UbdUnsupportedException}, {@link UbdTimeoutException}, {@link UbdClosedException} and
 * {@link InvalidDeviceSpecException}. Each also names its {@link Kind}, so that a caller mapping errors to its own
 * (exit statuses, HTTP statuses) switches over one enum instead of testing types one by one.
 */
public class UbdException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    /** What sort of error it is. */
    private final Kind kind;
    /** The positive errno the kernel answered, or 0. */
    private final int errno;

    /** What sort of error an exception is: one constant a public subclass, and {@link #OTHER} for the rest. */
    public enum Kind {
        /** {@link UbdModuleNotLoadedException}: no ublk driver; load it ({@code modprobe ublk_drv}). */
        MODULE_NOT_LOADED,
        /** {@link UbdPermissionException} (and {@link UbdMemoryLockException}): the kernel refused for lack of
         * privilege. */
        PERMISSION,
        /** {@link UbdDeviceBusyException}: the device or id is in use. */
        BUSY,
        /** {@link UbdNoSuchDeviceException}: no device has that id. */
        NO_SUCH_DEVICE,
        /** {@link UbdDeviceStateException}: the device's state does not allow the call. */
        DEVICE_STATE,
        /** {@link UbdUnsupportedException}: the running kernel lacks what was asked for. */
        UNSUPPORTED,
        /** {@link UbdTimeoutException}: a kernel call did not answer within its bound. */
        TIMEOUT,
        /** {@link UbdClosedException}: the object called was already closed. */
        CLOSED,
        /** {@link InvalidDeviceSpecException}: an argument was refused before anything reached the kernel. */
        INVALID_ARGUMENT,
        /** {@link UbdIoException}: a block request failed with an errno. */
        IO,
        /** Any other error: the message and the errno say what it was. */
        OTHER
    }

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
        this(Kind.OTHER, message, errno, cause);
    }

    /**
     * An error of a given kind: for the library's subclasses, and for an application's own that extend this one.
     *
     * @param kind what sort of error it is
     * @param message what failed and what to do about it
     * @param errno the errno the kernel answered (either sign), or 0
     * @param cause the error that caused it, or null
     */
    protected UbdException(Kind kind, String message, int errno, Throwable cause) {
        super(message, cause);
        this.kind = Objects.requireNonNull(kind, "kind");
        this.errno = Math.abs(errno);
    }

    /** {@return what sort of error it is} */
    public Kind kind() {
        return kind;
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

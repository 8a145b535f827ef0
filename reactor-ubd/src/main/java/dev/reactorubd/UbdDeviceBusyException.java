package dev.reactorubd;

/**
 * The device or id is in use: another server, an open block device, or a mounted filesystem still holds it.
 */
public class UbdDeviceBusyException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdDeviceBusyException(String message) {
        super(Kind.BUSY, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdDeviceBusyException(String message, int errno) {
        super(Kind.BUSY, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdDeviceBusyException(String message, int errno, Throwable cause) {
        super(Kind.BUSY, message, errno, cause);
    }
}

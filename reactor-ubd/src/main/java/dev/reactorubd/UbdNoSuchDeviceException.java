package dev.reactorubd;

/**
 * No ublk device has the given id (it was never added, or was already deleted).
 */
public class UbdNoSuchDeviceException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdNoSuchDeviceException(String message) {
        super(Kind.NO_SUCH_DEVICE, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdNoSuchDeviceException(String message, int errno) {
        super(Kind.NO_SUCH_DEVICE, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdNoSuchDeviceException(String message, int errno, Throwable cause) {
        super(Kind.NO_SUCH_DEVICE, message, errno, cause);
    }
}

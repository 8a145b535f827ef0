package dev.reactorubd;

/**
 * A kernel call did not answer within its bound. The call was cancelled; the device may be left in any state, so inspect it with deviceInfo and delete it if it is stale.
 */
public class UbdTimeoutException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdTimeoutException(String message) {
        super(Kind.TIMEOUT, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdTimeoutException(String message, int errno) {
        super(Kind.TIMEOUT, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdTimeoutException(String message, int errno, Throwable cause) {
        super(Kind.TIMEOUT, message, errno, cause);
    }
}

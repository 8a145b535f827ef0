package dev.reactorubd;

/**
 * The object the call went to (a control handle, a ring, a queue) was already closed.
 */
public class UbdClosedException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdClosedException(String message) {
        super(Kind.CLOSED, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdClosedException(String message, int errno) {
        super(Kind.CLOSED, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdClosedException(String message, int errno, Throwable cause) {
        super(Kind.CLOSED, message, errno, cause);
    }
}

package dev.reactorubd;

/**
 * The running kernel does not support what was asked: a feature, a command or a parameter that a newer kernel has.
 */
public class UbdUnsupportedException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdUnsupportedException(String message) {
        super(Kind.UNSUPPORTED, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdUnsupportedException(String message, int errno) {
        super(Kind.UNSUPPORTED, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdUnsupportedException(String message, int errno, Throwable cause) {
        super(Kind.UNSUPPORTED, message, errno, cause);
    }
}

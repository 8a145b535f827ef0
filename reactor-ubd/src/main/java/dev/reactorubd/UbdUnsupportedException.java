package dev.reactorubd;

/**
 * The running kernel does not support what was asked: a feature, a command or a parameter that a newer kernel has.
 */
public class UbdUnsupportedException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdUnsupportedException(String message) {
        super(message);
    }

    public UbdUnsupportedException(String message, int errno) {
        super(message, errno);
    }

    public UbdUnsupportedException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

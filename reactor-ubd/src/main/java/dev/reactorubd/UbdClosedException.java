package dev.reactorubd;

/**
 * The object the call went to (a control handle, a ring, a queue) was already closed.
 */
public class UbdClosedException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdClosedException(String message) {
        super(message);
    }

    public UbdClosedException(String message, int errno) {
        super(message, errno);
    }

    public UbdClosedException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

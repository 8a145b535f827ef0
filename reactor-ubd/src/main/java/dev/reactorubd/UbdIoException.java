package dev.reactorubd;

/**
 * A block request failed with a given errno. Backends signal it to choose the error the kernel reports to the
 * writer or reader (for example {@code ENOSPC}); any other error fails the request with {@code EIO}. The virtual
 * device of the test kit signals it to callers whose request failed.
 */
public class UbdIoException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param message what failed and what to do about it
     */
    public UbdIoException(int errno, String message) {
        super(Kind.IO, message + " (" + Errno.name(errno) + ")", errno, null);
        if (errno == 0) {
            throw new IllegalArgumentException("an IO error needs a non-zero errno");
        }
    }

    /**
     * The positive errno to report for a request failed by {@code error}: its own, or EIO.
     *
     * @param error the error
     * @return the positive errno to report for a request failed by {@code error}: its own, or EIO
     */
    public static int errnoOf(Throwable error) {
        if (error instanceof UbdException u && u.errno() != 0) {
            return u.errno();
        }
        return Errno.EIO;
    }
}

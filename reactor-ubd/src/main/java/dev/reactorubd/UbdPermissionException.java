package dev.reactorubd;

/**
 * The kernel refused the call for lack of privilege: ublk devices need CAP_SYS_ADMIN (run as root) unless they are unprivileged devices.
 */
public class UbdPermissionException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdPermissionException(String message) {
        super(Kind.PERMISSION, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdPermissionException(String message, int errno) {
        super(Kind.PERMISSION, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdPermissionException(String message, int errno, Throwable cause) {
        super(Kind.PERMISSION, message, errno, cause);
    }
}

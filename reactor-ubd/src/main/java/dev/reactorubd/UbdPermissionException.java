package dev.reactorubd;

/**
 * The kernel refused the call for lack of privilege: ublk devices need CAP_SYS_ADMIN (run as root) unless they are unprivileged devices.
 */
public class UbdPermissionException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdPermissionException(String message) {
        super(message);
    }

    public UbdPermissionException(String message, int errno) {
        super(message, errno);
    }

    public UbdPermissionException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

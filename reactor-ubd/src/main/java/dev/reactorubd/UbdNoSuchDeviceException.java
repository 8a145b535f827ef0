package dev.reactorubd;

/**
 * No ublk device has the given id (it was never added, or was already deleted).
 */
public class UbdNoSuchDeviceException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdNoSuchDeviceException(String message) {
        super(message);
    }

    public UbdNoSuchDeviceException(String message, int errno) {
        super(message, errno);
    }

    public UbdNoSuchDeviceException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

package dev.reactorubd;

/**
 * The device or id is in use: another server, an open block device, or a mounted filesystem still holds it.
 */
public class UbdDeviceBusyException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdDeviceBusyException(String message) {
        super(message);
    }

    public UbdDeviceBusyException(String message, int errno) {
        super(message, errno);
    }

    public UbdDeviceBusyException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

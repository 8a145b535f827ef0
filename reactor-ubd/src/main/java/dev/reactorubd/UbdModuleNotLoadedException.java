package dev.reactorubd;

/**
 * The ublk driver is not loaded: there is no /dev/ublk-control. The fix is `modprobe ublk_drv` (Linux 6.0 or newer, CONFIG_BLK_DEV_UBLK).
 */
public class UbdModuleNotLoadedException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public UbdModuleNotLoadedException(String message) {
        super(Kind.MODULE_NOT_LOADED, message, 0, null);
    }

    /**
     * An error with a message and the errno the kernel answered.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public UbdModuleNotLoadedException(String message, int errno) {
        super(Kind.MODULE_NOT_LOADED, message, errno, null);
    }

    /**
     * An error with a message and the errno the kernel answered, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @param cause the error that caused it
     */
    public UbdModuleNotLoadedException(String message, int errno, Throwable cause) {
        super(Kind.MODULE_NOT_LOADED, message, errno, cause);
    }
}

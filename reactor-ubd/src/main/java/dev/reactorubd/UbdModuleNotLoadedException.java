package dev.reactorubd;

/**
 * The ublk driver is not loaded: there is no /dev/ublk-control. The fix is `modprobe ublk_drv` (Linux 6.0 or newer, CONFIG_BLK_DEV_UBLK).
 */
public class UbdModuleNotLoadedException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdModuleNotLoadedException(String message) {
        super(message);
    }

    public UbdModuleNotLoadedException(String message, int errno) {
        super(message, errno);
    }

    public UbdModuleNotLoadedException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

package dev.reactorubd;

/**
 * A kernel call did not answer within its bound. The call was cancelled; the device may be left in any state, so inspect it with deviceInfo and delete it if it is stale.
 */
public class UbdTimeoutException extends UbdException {
    private static final long serialVersionUID = 1L;

    public UbdTimeoutException(String message) {
        super(message);
    }

    public UbdTimeoutException(String message, int errno) {
        super(message, errno);
    }

    public UbdTimeoutException(String message, int errno, Throwable cause) {
        super(message, errno, cause);
    }
}

package dev.reactorubd;

/**
 * The device is not in a state that allows what was asked: for example a resize of a device that is not started
 * (the kernel would dereference a disk that does not exist), or a quiesce of a device that is closing. The message
 * names the state and says what to do.
 */
public class UbdDeviceStateException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * An error with a message.
     *
     * @param message what was refused, in which state, and what to do about it
     */
    public UbdDeviceStateException(String message) {
        super(Kind.DEVICE_STATE, message, 0, null);
    }

    /**
     * An error with a message and the kernel's errno.
     *
     * @param message what was refused, in which state, and what to do about it
     * @param errno the errno, negative as the kernel returns it, or positive
     */
    public UbdDeviceStateException(String message, int errno) {
        super(Kind.DEVICE_STATE, message, errno, null);
    }
}

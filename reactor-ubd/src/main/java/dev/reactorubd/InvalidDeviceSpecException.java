package dev.reactorubd;

/**
 * A {@code DeviceSpec} (or another argument) was refused before anything reached the kernel. {@link #field()}
 * names the field at fault; the message says why and what values are accepted.
 */
public class InvalidDeviceSpecException extends UbdException {
    private static final long serialVersionUID = 1L;
    private final String field;

    public InvalidDeviceSpecException(String field, String reason) {
        super(field + ": " + reason);
        this.field = field;
    }

    /** The name of the field that was refused. */
    public String field() {
        return field;
    }
}

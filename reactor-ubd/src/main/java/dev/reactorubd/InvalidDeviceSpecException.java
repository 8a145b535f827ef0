package dev.reactorubd;

/**
 * A {@code DeviceSpec} (or another argument) was refused before anything reached the kernel. {@link #field()}
 * names the field at fault; the message says why and what values are accepted.
 */
public class InvalidDeviceSpecException extends UbdException {
    private static final long serialVersionUID = 1L;
    /** The name of the field that was refused. */
    private final String field;

    /**
     * A refusal of one field.
     *
     * @param field the name of the field, as in {@code DeviceSpec.Builder}
     * @param reason why it was refused, and what values are accepted
     */
    public InvalidDeviceSpecException(String field, String reason) {
        super(Kind.INVALID_ARGUMENT, field + ": " + reason, 0, null);
        this.field = field;
    }

    /** {@return the name of the field that was refused} */
    public String field() {
        return field;
    }
}

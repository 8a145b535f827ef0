package dev.reactorubd.management;

import java.nio.file.Path;

/**
 * The credentials file cannot be used: its mode lets others than its owner read it, it is not the service user's, or
 * a line is malformed. The service refuses to start with it (the message names the file and what to do).
 */
public class CredentialsFileException extends IllegalStateException {
    private static final long serialVersionUID = 1L;
    /** The file, as configured; kept as text so that the exception stays serializable. */
    private final String file;

    /**
     * A refusal of the file.
     *
     * @param file    the credentials file
     * @param message what is wrong with it and what to do
     */
    public CredentialsFileException(Path file, String message) {
        super("credentials file " + file + ": " + message);
        this.file = String.valueOf(file);
    }

    /** {@return the credentials file, as configured} */
    public String file() {
        return file;
    }
}

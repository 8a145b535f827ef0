package dev.reactorubd.targets.rbd;

import dev.reactorubd.UbdException;
import java.util.Objects;

/**
 * Opening an RBD image failed: Ceph's libraries are missing, the configuration or keyring cannot be read, no monitor
 * answered, the cluster refused the client's key, or the pool, image or snapshot does not exist. {@link #reason()}
 * says which; the message names the image and what to check; {@link #errno()} is what librados or librbd answered
 * (0 when the failure was found before calling them).
 *
 * <p>Errors of single requests are not RbdExceptions: they fail the request with a {@link dev.reactorubd.UbdIoException}
 * carrying librbd's errno.
 */
public final class RbdException extends UbdException {
    private static final long serialVersionUID = 1L;

    /** Why opening an image failed. */
    public enum Reason {
        /** librados.so.2 or librbd.so.1 cannot be opened: install Ceph's client libraries (Debian's librbd1). */
        LIBRARY_MISSING,
        /** The configuration file or keyring cannot be read, or the configuration names no monitor. */
        CONFIGURATION,
        /** No monitor answered within the connect timeout: the cluster is down or the configuration names the wrong one. */
        UNREACHABLE,
        /** The cluster refused the client: unknown client id, or a key that is not the client's. */
        AUTHENTICATION,
        /** The client is known but lacks the capabilities for the pool or image. */
        PERMISSION,
        /** The pool does not exist. */
        NO_POOL,
        /** The pool has no image of that name. */
        NO_IMAGE,
        /** The image has no snapshot of that name. */
        NO_SNAPSHOT,
        /** The storage policy does not allow the pool or the client. */
        POLICY,
        /** Any other failure: the message and the errno say what it was. */
        OTHER
    }

    /** Why it failed. */
    private final Reason reason;

    /**
     * An error with its reason.
     *
     * @param reason why it failed
     * @param message what failed and what to do about it
     * @param errno what librados or librbd answered (either sign), or 0
     * @param cause the error that caused it, or null
     */
    public RbdException(Reason reason, String message, int errno, Throwable cause) {
        super(message, Math.abs(errno), cause);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    /** {@return why opening the image failed} */
    public Reason reason() {
        return reason;
    }
}

package dev.reactorubd.targets.nbd;

import dev.reactorubd.UbdException;

/**
 * Connecting to an NBD server failed: the connection could not be made or timed out, the server is not a fixed
 * newstyle NBD server, it refused the export (it has no export of that name, policy, TLS required...), TLS that the
 * URI asked for failed (the server refused NBD_OPT_STARTTLS, or its certificate was not trusted), or the server
 * announced something outside the client's bounds (a handshake too long, an export or block size refused). The
 * message names the URI and says what to check. {@link #replyType()} is the server's option reply error
 * ({@code NBD_REP_ERR_*}), or 0 when the failure was not a refusal by the server.
 *
 * <p>Errors of single requests are not NbdExceptions: they fail the request with a
 * {@link dev.reactorubd.UbdIoException} carrying the errno.
 */
public class NbdException extends UbdException {
    private static final long serialVersionUID = 1L;
    /** {@code NBD_REP_ERR_UNKNOWN}: the server has no export of that name. */
    public static final int REP_ERR_UNKNOWN = NbdProtocol.REP_ERR_UNKNOWN;

    /** The server's {@code NBD_REP_ERR_*} reply type, or 0. */
    private final int replyType;

    /**
     * An error with a message.
     *
     * @param message what failed and what to do about it
     */
    public NbdException(String message) {
        this(message, 0, null);
    }

    /**
     * An error with a message, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param cause the error that caused it
     */
    public NbdException(String message, Throwable cause) {
        this(message, 0, cause);
    }

    /**
     * An error with a message, caused by another error.
     *
     * @param message what failed and what to do about it
     * @param replyType the server's {@code NBD_REP_ERR_*} reply type, or 0
     * @param cause the error that caused it
     */
    public NbdException(String message, int replyType, Throwable cause) {
        super(message, 0, cause);
        this.replyType = replyType;
    }

    /** {@return the server's {@code NBD_REP_ERR_*} reply type, or 0} */
    public int replyType() {
        return replyType;
    }

    /** {@return whether the server said it has no such export ({@code NBD_REP_ERR_UNKNOWN})} */
    public boolean isUnknownExport() {
        return replyType == NbdProtocol.REP_ERR_UNKNOWN;
    }
}

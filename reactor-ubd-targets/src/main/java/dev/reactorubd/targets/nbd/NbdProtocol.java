package dev.reactorubd.targets.nbd;

import dev.reactorubd.Errno;

/** Constants of the NBD protocol (fixed newstyle handshake, simple replies) and its error numbers. */
final class NbdProtocol {
    private NbdProtocol() {}

    // Handshake
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    static final long OLDSTYLE_MAGIC = 0x0000420281861253L;
    static final long OPTION_REPLY_MAGIC = 0x0003e889045565a9L;

    static final int FLAG_FIXED_NEWSTYLE = 1;
    static final int FLAG_NO_ZEROES = 1 << 1;
    static final int FLAG_C_FIXED_NEWSTYLE = 1;
    static final int FLAG_C_NO_ZEROES = 1 << 1;

    static final int OPT_EXPORT_NAME = 1;
    static final int OPT_ABORT = 2;
    static final int OPT_STARTTLS = 5;
    static final int OPT_GO = 7;

    static final int REP_ACK = 1;
    static final int REP_INFO = 3;
    static final int REP_FLAG_ERROR = 1 << 31;
    static final int REP_ERR_UNSUP = REP_FLAG_ERROR | 1;
    static final int REP_ERR_POLICY = REP_FLAG_ERROR | 2;
    static final int REP_ERR_INVALID = REP_FLAG_ERROR | 3;
    static final int REP_ERR_PLATFORM = REP_FLAG_ERROR | 4;
    static final int REP_ERR_TLS_REQD = REP_FLAG_ERROR | 5;
    static final int REP_ERR_UNKNOWN = REP_FLAG_ERROR | 6;
    static final int REP_ERR_SHUTDOWN = REP_FLAG_ERROR | 7;
    static final int REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR | 8;
    static final int REP_ERR_TOO_BIG = REP_FLAG_ERROR | 9;

    static final int INFO_EXPORT = 0;
    static final int INFO_BLOCK_SIZE = 3;

    // Transmission flags
    static final int TF_HAS_FLAGS = 1;
    static final int TF_READ_ONLY = 1 << 1;
    static final int TF_SEND_FLUSH = 1 << 2;
    static final int TF_SEND_FUA = 1 << 3;
    static final int TF_ROTATIONAL = 1 << 4;
    static final int TF_SEND_TRIM = 1 << 5;
    static final int TF_SEND_WRITE_ZEROES = 1 << 6;
    static final int TF_CAN_MULTI_CONN = 1 << 8;

    // Transmission
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    static final int REQUEST_HEADER = 28;
    static final int REPLY_HEADER = 16;

    static final int CMD_READ = 0;
    static final int CMD_WRITE = 1;
    static final int CMD_DISC = 2;
    static final int CMD_FLUSH = 3;
    static final int CMD_TRIM = 4;
    static final int CMD_WRITE_ZEROES = 6;

    static final int CMD_FLAG_FUA = 1;
    static final int CMD_FLAG_NO_HOLE = 1 << 1;

    /** What the protocol recommends a client sends at most in one READ or WRITE when the server states no limit. */
    static final int DEFAULT_MAX_PAYLOAD = 32 << 20;

    /** errno values the protocol names that {@link Errno} does not. */
    static final int EOVERFLOW = 75;

    static final int ESHUTDOWN = 108;

    /**
     * The errno to report for an NBD error value. The protocol's values are Linux's (EPERM, EIO, ENOMEM, EINVAL,
     * ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN); an unknown one becomes EIO, as the protocol asks.
     */
    static int errno(int nbdError) {
        return switch (nbdError) {
            case Errno.EPERM,
                    Errno.EIO,
                    Errno.ENOMEM,
                    Errno.EINVAL,
                    Errno.ENOSPC,
                    EOVERFLOW,
                    Errno.EOPNOTSUPP,
                    ESHUTDOWN -> nbdError;
            default -> Errno.EIO;
        };
    }

    static String errorName(int nbdError) {
        return switch (nbdError) {
            case Errno.EPERM -> "NBD_EPERM";
            case Errno.EIO -> "NBD_EIO";
            case Errno.ENOMEM -> "NBD_ENOMEM";
            case Errno.EINVAL -> "NBD_EINVAL";
            case Errno.ENOSPC -> "NBD_ENOSPC";
            case EOVERFLOW -> "NBD_EOVERFLOW";
            case Errno.EOPNOTSUPP -> "NBD_ENOTSUP";
            case ESHUTDOWN -> "NBD_ESHUTDOWN";
            default -> "NBD error " + nbdError;
        };
    }

    static String commandName(int type) {
        return switch (type) {
            case CMD_READ -> "READ";
            case CMD_WRITE -> "WRITE";
            case CMD_DISC -> "DISC";
            case CMD_FLUSH -> "FLUSH";
            case CMD_TRIM -> "TRIM";
            case CMD_WRITE_ZEROES -> "WRITE_ZEROES";
            default -> "command " + type;
        };
    }

    static String replyName(int type) {
        return switch (type) {
            case REP_ACK -> "NBD_REP_ACK";
            case REP_INFO -> "NBD_REP_INFO";
            case REP_ERR_UNSUP -> "NBD_REP_ERR_UNSUP";
            case REP_ERR_POLICY -> "NBD_REP_ERR_POLICY";
            case REP_ERR_INVALID -> "NBD_REP_ERR_INVALID";
            case REP_ERR_PLATFORM -> "NBD_REP_ERR_PLATFORM";
            case REP_ERR_TLS_REQD -> "NBD_REP_ERR_TLS_REQD";
            case REP_ERR_UNKNOWN -> "NBD_REP_ERR_UNKNOWN";
            case REP_ERR_SHUTDOWN -> "NBD_REP_ERR_SHUTDOWN";
            case REP_ERR_BLOCK_SIZE_REQD -> "NBD_REP_ERR_BLOCK_SIZE_REQD";
            case REP_ERR_TOO_BIG -> "NBD_REP_ERR_TOO_BIG";
            default -> "reply type 0x" + Integer.toHexString(type);
        };
    }

    /** The transmission flags as words, for logs and messages. */
    static String flagNames(int flags) {
        StringBuilder b = new StringBuilder();
        String[] names = {
            "HAS_FLAGS",
            "READ_ONLY",
            "SEND_FLUSH",
            "SEND_FUA",
            "ROTATIONAL",
            "SEND_TRIM",
            "SEND_WRITE_ZEROES",
            "SEND_DF",
            "CAN_MULTI_CONN",
            "SEND_RESIZE",
            "SEND_CACHE",
            "SEND_FAST_ZERO"
        };
        for (int i = 0; i < 16; i++) {
            if ((flags & (1 << i)) != 0) {
                b.append(b.isEmpty() ? "" : ",").append(i < names.length ? names[i] : "bit" + i);
            }
        }
        return b.toString();
    }

    /** A throwable's message for a sentence, or its class's name when it has none. */
    static String describe(Throwable t) {
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }
}

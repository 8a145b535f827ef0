package dev.reactorubd;

/** The errno values this library reacts to, with their symbolic names for messages. */
public final class Errno {
    /** {@code EPERM}: operation not permitted. */
    public static final int EPERM = 1;
    /** {@code ENOENT}: no such file or directory. */
    public static final int ENOENT = 2;
    /** {@code EINTR}: interrupted system call. */
    public static final int EINTR = 4;
    /** {@code EIO}: input/output error. */
    public static final int EIO = 5;
    /** {@code ENXIO}: no such device or address. */
    public static final int ENXIO = 6;
    /** {@code EBADF}: bad file descriptor. */
    public static final int EBADF = 9;
    /** {@code EAGAIN}: resource temporarily unavailable. */
    public static final int EAGAIN = 11;
    /** {@code ENOMEM}: cannot allocate memory. */
    public static final int ENOMEM = 12;
    /** {@code EACCES}: permission denied. */
    public static final int EACCES = 13;
    /** {@code EFAULT}: bad address. */
    public static final int EFAULT = 14;
    /** {@code EBUSY}: device or resource busy. */
    public static final int EBUSY = 16;
    /** {@code EEXIST}: file exists. */
    public static final int EEXIST = 17;
    /** {@code ENODEV}: no such device. */
    public static final int ENODEV = 19;
    /** {@code EINVAL}: invalid argument. */
    public static final int EINVAL = 22;
    /** {@code ENOSPC}: no space left on device. */
    public static final int ENOSPC = 28;
    /** {@code EROFS}: read-only file system. */
    public static final int EROFS = 30;
    /** {@code ENOSYS}: function not implemented. */
    public static final int ENOSYS = 38;
    /** {@code ENODATA}: no data available. */
    public static final int ENODATA = 61;
    /** {@code EOVERFLOW}: value too large for the data type. */
    public static final int EOVERFLOW = 75;
    /** {@code EOPNOTSUPP}: operation not supported. */
    public static final int EOPNOTSUPP = 95;
    /** {@code ESHUTDOWN}: cannot send after the transport endpoint shut down. */
    public static final int ESHUTDOWN = 108;
    /** {@code ETIMEDOUT}: connection timed out. */
    public static final int ETIMEDOUT = 110;
    /** {@code EALREADY}: operation already in progress. */
    public static final int EALREADY = 114;
    /** {@code ECANCELED}: operation canceled. */
    public static final int ECANCELED = 125;

    private Errno() {}

    /** Linux's errno names, by number (null where Linux has none). */
    private static final String[] NAMES = {
        null,
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        null,
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        null,
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL"
    };

    /** What the C library says of each (its {@code strerror}), by number. */
    private static final String[] MESSAGES = {
        null,
        "Operation not permitted",
        "No such file or directory",
        "No such process",
        "Interrupted system call",
        "Input/output error",
        "No such device or address",
        "Argument list too long",
        "Exec format error",
        "Bad file descriptor",
        "No child processes",
        "Resource temporarily unavailable",
        "Cannot allocate memory",
        "Permission denied",
        "Bad address",
        "Block device required",
        "Device or resource busy",
        "File exists",
        "Invalid cross-device link",
        "No such device",
        "Not a directory",
        "Is a directory",
        "Invalid argument",
        "Too many open files in system",
        "Too many open files",
        "Inappropriate ioctl for device",
        "Text file busy",
        "File too large",
        "No space left on device",
        "Illegal seek",
        "Read-only file system",
        "Too many links",
        "Broken pipe",
        "Numerical argument out of domain",
        "Numerical result out of range",
        "Resource deadlock avoided",
        "File name too long",
        "No locks available",
        "Function not implemented",
        "Directory not empty",
        "Too many levels of symbolic links",
        null,
        "No message of desired type",
        "Identifier removed",
        "Channel number out of range",
        "Level 2 not synchronized",
        "Level 3 halted",
        "Level 3 reset",
        "Link number out of range",
        "Protocol driver not attached",
        "No CSI structure available",
        "Level 2 halted",
        "Invalid exchange",
        "Invalid request descriptor",
        "Exchange full",
        "No anode",
        "Invalid request code",
        "Invalid slot",
        null,
        "Bad font file format",
        "Device not a stream",
        "No data available",
        "Timer expired",
        "Out of streams resources",
        "Machine is not on the network",
        "Package not installed",
        "Object is remote",
        "Link has been severed",
        "Advertise error",
        "Srmount error",
        "Communication error on send",
        "Protocol error",
        "Multihop attempted",
        "RFS specific error",
        "Bad message",
        "Value too large for defined data type",
        "Name not unique on network",
        "File descriptor in bad state",
        "Remote address changed",
        "Can not access a needed shared library",
        "Accessing a corrupted shared library",
        ".lib section in a.out corrupted",
        "Attempting to link in too many shared libraries",
        "Cannot exec a shared library directly",
        "Invalid or incomplete multibyte or wide character",
        "Interrupted system call should be restarted",
        "Streams pipe error",
        "Too many users",
        "Socket operation on non-socket",
        "Destination address required",
        "Message too long",
        "Protocol wrong type for socket",
        "Protocol not available",
        "Protocol not supported",
        "Socket type not supported",
        "Operation not supported",
        "Protocol family not supported",
        "Address family not supported by protocol",
        "Address already in use",
        "Cannot assign requested address",
        "Network is down",
        "Network is unreachable",
        "Network dropped connection on reset",
        "Software caused connection abort",
        "Connection reset by peer",
        "No buffer space available",
        "Transport endpoint is already connected",
        "Transport endpoint is not connected",
        "Cannot send after transport endpoint shutdown",
        "Too many references: cannot splice",
        "Connection timed out",
        "Connection refused",
        "Host is down",
        "No route to host",
        "Operation already in progress",
        "Operation now in progress",
        "Stale file handle",
        "Structure needs cleaning",
        "Not a XENIX named type file",
        "No XENIX semaphores available",
        "Is a named type file",
        "Remote I/O error",
        "Disk quota exceeded",
        "No medium found",
        "Wrong medium type",
        "Operation canceled",
        "Required key not available",
        "Key has expired",
        "Key has been revoked",
        "Key was rejected by service",
        "Owner died",
        "State not recoverable",
        "Operation not possible due to RF-kill"
    };

    /**
     * {@code "ENODEV"} for 19 (or -19); {@code "errno 1234"} for a number Linux does not name.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return {@code "ENODEV"} for 19 (or -19); {@code "errno 1234"} for a number Linux does not name
     */
    public static String name(int errno) {
        int e = Math.abs(errno);
        return e < NAMES.length && NAMES[e] != null ? NAMES[e] : "errno " + e;
    }

    /**
     * {@code "ENODEV (No such device)"}.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return {@code "ENODEV (No such device)"}; {@code "errno 1234 (Unknown error 1234)"} for a number Linux
     *         does not name
     */
    public static String describe(int errno) {
        int e = Math.abs(errno);
        return name(e) + " (" + (e < MESSAGES.length && MESSAGES[e] != null ? MESSAGES[e] : "Unknown error " + e) + ")";
    }
}

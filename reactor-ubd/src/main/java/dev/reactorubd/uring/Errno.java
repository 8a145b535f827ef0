package dev.reactorubd.uring;

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

    /**
     * {@code "ENODEV"} for 19 (or -19); {@code "errno 1234"} for one this class does not name.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return {@code "ENODEV"} for 19 (or -19); {@code "errno 1234"} for one this class does not name
     */
    public static String name(int errno) {
        return switch (Math.abs(errno)) {
            case EPERM -> "EPERM";
            case ENOENT -> "ENOENT";
            case EINTR -> "EINTR";
            case EIO -> "EIO";
            case ENXIO -> "ENXIO";
            case EBADF -> "EBADF";
            case EAGAIN -> "EAGAIN";
            case ENOMEM -> "ENOMEM";
            case EACCES -> "EACCES";
            case EFAULT -> "EFAULT";
            case EBUSY -> "EBUSY";
            case EEXIST -> "EEXIST";
            case ENODEV -> "ENODEV";
            case EINVAL -> "EINVAL";
            case ENOSPC -> "ENOSPC";
            case EROFS -> "EROFS";
            case ENOSYS -> "ENOSYS";
            case ENODATA -> "ENODATA";
            case EOVERFLOW -> "EOVERFLOW";
            case EOPNOTSUPP -> "EOPNOTSUPP";
            case ESHUTDOWN -> "ESHUTDOWN";
            case ETIMEDOUT -> "ETIMEDOUT";
            case EALREADY -> "EALREADY";
            case ECANCELED -> "ECANCELED";
            default -> "errno " + Math.abs(errno);
        };
    }

    /**
     * {@code "ENODEV (No such device)"}.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return {@code "ENODEV (No such device)"}
     */
    public static String describe(int errno) {
        return name(errno) + " (" + Libc.strerror(errno) + ")";
    }
}

package dev.reactorubd.uring;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The libc functions this library calls. Each returns its result, or {@code -errno} when the call failed, the way
 * the kernel reports results in CQEs. Calls block only as long as the system call does: {@code open} of a
 * character device and {@code mmap} return at once; {@code io_uring_enter} with {@code GETEVENTS} waits, and is
 * only called that way on threads this library owns.
 */
public final class Libc {
    /** {@code O_RDONLY}, as in the C headers. */
    public static final int O_RDONLY = 0;
    /** {@code O_WRONLY}, as in the C headers. */
    public static final int O_WRONLY = 1;
    /** {@code O_RDWR}, as in the C headers. */
    public static final int O_RDWR = 2;
    /** {@code O_DIRECT}, as in the C headers. */
    public static final int O_DIRECT = 0x4000;
    /** {@code O_CLOEXEC}, as in the C headers. */
    public static final int O_CLOEXEC = 0x80000;
    /** {@code O_CREAT}, as in the C headers (x86_64). */
    public static final int O_CREAT = 0x40;
    /** {@code O_EXCL}, as in the C headers: with O_CREAT, fail with EEXIST if the name exists (even as a symlink). */
    public static final int O_EXCL = 0x80;
    /** {@code O_NOCTTY}, as in the C headers. */
    public static final int O_NOCTTY = 0x100;
    /** {@code O_DIRECTORY}, as in the C headers (x86_64): fail with ENOTDIR unless the path is a directory. */
    public static final int O_DIRECTORY = 0x10000;
    /**
     * {@code O_NOFOLLOW}, as in the C headers (x86_64): fail with ELOOP if the last component is a symlink (with
     * {@link #O_PATH}, open the symlink itself instead).
     */
    public static final int O_NOFOLLOW = 0x20000;
    /**
     * {@code O_PATH}, as in the C headers (x86_64): a descriptor that names the file without opening it (no read,
     * no write, no device driver's open, never blocks on a FIFO); {@link #fstat} works on it.
     */
    public static final int O_PATH = 0x200000;
    /** {@code AT_FDCWD}: {@link #openat} relative to the working directory. */
    public static final int AT_FDCWD = -100;

    /** {@code S_IFMT}: the file-type bits of {@code st_mode}. */
    public static final int S_IFMT = 0170000;
    /** {@code S_IFREG}: a regular file. */
    public static final int S_IFREG = 0100000;
    /** {@code S_IFBLK}: a block device. */
    public static final int S_IFBLK = 0060000;
    /** {@code S_IFCHR}: a character device. */
    public static final int S_IFCHR = 0020000;
    /** {@code S_IFDIR}: a directory. */
    public static final int S_IFDIR = 0040000;
    /** {@code S_IFIFO}: a FIFO. */
    public static final int S_IFIFO = 0010000;
    /** {@code S_IFLNK}: a symbolic link. */
    public static final int S_IFLNK = 0120000;
    /** {@code S_IFSOCK}: a socket. */
    public static final int S_IFSOCK = 0140000;

    /** Index in {@link #fstat}'s array: {@code st_dev}. */
    public static final int STAT_DEV = 0;
    /** Index in {@link #fstat}'s array: {@code st_ino}. */
    public static final int STAT_INO = 1;
    /** Index in {@link #fstat}'s array: {@code st_mode} (type and permission bits). */
    public static final int STAT_MODE = 2;
    /** Index in {@link #fstat}'s array: {@code st_size} in bytes. */
    public static final int STAT_SIZE = 3;
    /** Index in {@link #fstat}'s array: {@code st_rdev} (the device a device file names). */
    public static final int STAT_RDEV = 4;
    /** How many values {@link #fstat} writes. */
    public static final int STAT_VALUES = 5;

    /** {@code PROT_READ}, as in the C headers. */
    public static final int PROT_READ = 1;
    /** {@code MAP_SHARED}, as in the C headers. */
    public static final int MAP_SHARED = 1;
    /** {@code MAP_POPULATE}, as in the C headers. */
    public static final int MAP_POPULATE = 0x8000;

    /** The x86_64 system call number of {@code io_uring_setup}. */
    public static final long SYS_IO_URING_SETUP = 425;
    /** The x86_64 system call number of {@code io_uring_enter}. */
    public static final long SYS_IO_URING_ENTER = 426;
    /** {@code __NR_io_uring_register} on x86_64. */
    public static final long SYS_IO_URING_REGISTER = 427;
    /** {@code __NR_fstat} on x86_64 (glibc before 2.33 exports no {@code fstat} symbol, so it is called by number). */
    public static final long SYS_FSTAT = 5;
    /** {@code __NR_ftruncate} on x86_64. */
    public static final long SYS_FTRUNCATE = 77;
    /** {@code sizeof(struct stat)} on x86_64. */
    private static final long STAT_BYTES = 144;

    /** {@code PR_SET_IO_FLUSHER} (Linux 5.6+): {@code prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0)} marks the calling thread. */
    public static final int PR_SET_IO_FLUSHER = 57;
    /** {@code PR_GET_IO_FLUSHER} (Linux 5.6+): 1 when the calling thread is an IO flusher, else 0. */
    public static final int PR_GET_IO_FLUSHER = 58;

    /** {@code MCL_CURRENT}: {@code mlockall} locks every page mapped now. */
    public static final int MCL_CURRENT = 1;
    /** {@code MCL_FUTURE}: {@code mlockall} locks every page mapped from now on. */
    public static final int MCL_FUTURE = 2;

    /** {@code RLIMIT_MEMLOCK}: the most bytes a process without CAP_IPC_LOCK may lock. */
    public static final int RLIMIT_MEMLOCK = 8;
    /** {@code RLIM_INFINITY} as a Java long (the C value is {@code ~0UL}). */
    public static final long RLIM_INFINITY = -1L;

    private static final long MAP_FAILED = -1L;
    private static final int SC_PAGESIZE = 30;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

    private static final MethodHandle OPEN = downcall(
            "open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle OPENAT = downcall(
            "openat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(3));
    private static final MethodHandle CLOSE =
            downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), CAPTURE_ERRNO);
    private static final MethodHandle MMAP = downcall(
            "mmap",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
            CAPTURE_ERRNO);
    private static final MethodHandle MUNMAP =
            downcall("munmap", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle PREAD = downcall(
            "pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle PWRITE = downcall(
            "pwrite", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle PWRITEV = downcall(
            "pwritev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle IOCTL_PTR = downcall(
            "ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle SYSCALL6 = downcall(
            "syscall",
            FunctionDescriptor.of(
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(1));
    private static final MethodHandle PRCTL = downcall(
            "prctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(1));
    private static final MethodHandle MLOCKALL =
            downcall("mlockall", FunctionDescriptor.of(JAVA_INT, JAVA_INT), CAPTURE_ERRNO);
    private static final MethodHandle GETRLIMIT =
            downcall("getrlimit", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), CAPTURE_ERRNO);
    private static final MethodHandle SYSCONF = downcall("sysconf", FunctionDescriptor.of(JAVA_LONG, JAVA_INT));
    private static final ThreadLocal<MemorySegment> CALL_STATE_BUFFER =
            ThreadLocal.withInitial(() -> Arena.global().allocate(CALL_STATE));

    private static final long PAGE_SIZE = sysconf(SC_PAGESIZE);

    private Libc() {}

    private static MethodHandle downcall(String name, FunctionDescriptor fd, Linker.Option... options) {
        MemorySegment symbol =
                LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    /** {@return the page size of this machine} */
    public static long pageSize() {
        return PAGE_SIZE;
    }

    /**
     * {@code open(path, flags)}: a file descriptor, or {@code -errno}.
     *
     * @param path the file's path
     * @param flags the {@code O_*} flags
     * @return {@code open(path, flags)}: a file descriptor, or {@code -errno}
     */
    public static int open(String path, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int fd = (int) OPEN.invokeExact(state, arena.allocateFrom(path), flags, 0);
            return fd < 0 ? -errno(state) : fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code openat(dirfd, path, flags, mode)}: a file descriptor, or {@code -errno}. A relative {@code path} is
     * resolved from the directory {@code dirfd} names (an {@link #O_PATH} descriptor will do), or from the working
     * directory with {@link #AT_FDCWD}; {@code mode} is used only with {@link #O_CREAT}.
     *
     * @param dirfd the directory's descriptor, or {@link #AT_FDCWD}
     * @param path the file's path, relative to {@code dirfd} (or absolute, which ignores it)
     * @param flags the {@code O_*} flags
     * @param mode the permission bits of a file {@link #O_CREAT} creates (before the umask)
     * @return a file descriptor, or {@code -errno}
     */
    public static int openat(int dirfd, String path, int flags, int mode) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int fd = (int) OPENAT.invokeExact(state, dirfd, arena.allocateFrom(path), flags, mode);
            return fd < 0 ? -errno(state) : fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code fstat(fd, &st)}: 0, or {@code -errno}; on success {@code out} holds {@code st_dev}, {@code st_ino},
     * {@code st_mode}, {@code st_size} and {@code st_rdev} at {@link #STAT_DEV}, {@link #STAT_INO}, {@link #STAT_MODE},
     * {@link #STAT_SIZE} and {@link #STAT_RDEV} (x86_64's {@code struct stat}: offsets 0, 8, 24 (a u32), 48 and 40).
     * Works on an {@link #O_PATH} descriptor, and so describes what a descriptor names without opening it.
     *
     * @param fd the file descriptor
     * @param out an array of at least {@link #STAT_VALUES}, which receives the values
     * @return 0, or {@code -errno}
     */
    public static int fstat(int fd, long[] out) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = arena.allocate(STAT_BYTES, 8);
            int r = (int) syscall(SYS_FSTAT, fd, st.address(), 0, 0, 0, 0);
            if (r < 0) {
                return r;
            }
            out[STAT_DEV] = st.get(JAVA_LONG, 0);
            out[STAT_INO] = st.get(JAVA_LONG, 8);
            out[STAT_MODE] = Integer.toUnsignedLong(st.get(JAVA_INT, 24));
            out[STAT_RDEV] = st.get(JAVA_LONG, 40);
            out[STAT_SIZE] = st.get(JAVA_LONG, 48);
            return 0;
        }
    }

    /**
     * {@code ftruncate(fd, length)}: 0, or {@code -errno}. Sets a regular file's length (a longer file is sparse).
     *
     * @param fd a descriptor opened for writing
     * @param length the new length in bytes
     * @return 0, or {@code -errno}
     */
    public static int ftruncate(int fd, long length) {
        return (int) syscall(SYS_FTRUNCATE, fd, length, 0, 0, 0, 0);
    }

    /**
     * {@code close(fd)}: 0, or {@code -errno}.
     *
     * @param fd the file descriptor
     * @return {@code close(fd)}: 0, or {@code -errno}
     */
    public static int close(int fd) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) CLOSE.invokeExact(state, fd);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code mmap(NULL, length, prot, flags, fd, offset)}: the address, or {@code -errno}.
     *
     * @param length the length in bytes
     * @param prot the {@code PROT_*} bits
     * @param flags the {@code MAP_*} flags
     * @param fd the file descriptor
     * @param offset the offset in the file, a multiple of the page size
     * @return {@code mmap(NULL, length, prot, flags, fd, offset)}: the address, or {@code -errno}
     */
    public static long mmap(long length, int prot, int flags, int fd, long offset) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long addr = (long) MMAP.invokeExact(state, 0L, length, prot, flags, fd, offset);
            return addr == MAP_FAILED ? -errno(state) : addr;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code munmap(addr, length)}: 0, or {@code -errno}.
     *
     * @param addr the mapping's address, as {@link #mmap} returned it
     * @param length the length in bytes
     * @return {@code munmap(addr, length)}: 0, or {@code -errno}
     */
    public static int munmap(long addr, long length) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) MUNMAP.invokeExact(state, addr, length);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code pread(fd, buf, count, offset)}: bytes read, or {@code -errno}.
     *
     * @param fd the file descriptor
     * @param buf the buffer address
     * @param count the byte count
     * @param offset the offset in the file
     * @return {@code pread(fd, buf, count, offset)}: bytes read, or {@code -errno}
     */
    public static long pread(int fd, long buf, long count, long offset) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long r = (long) PREAD.invokeExact(state, fd, buf, count, offset);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code pwrite(fd, buf, count, offset)}: bytes written, or {@code -errno}.
     *
     * @param fd the file descriptor
     * @param buf the buffer address
     * @param count the byte count
     * @param offset the offset in the file
     * @return {@code pwrite(fd, buf, count, offset)}: bytes written, or {@code -errno}
     */
    public static long pwrite(int fd, long buf, long count, long offset) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long r = (long) PWRITE.invokeExact(state, fd, buf, count, offset);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code pwritev(fd, iov, iovcnt, offset)}: bytes written, or {@code -errno}. {@code iov} is the address of
     * {@code iovcnt} {@code struct iovec}s (base address, then length, 8 bytes each).
     *
     * @param fd the file descriptor
     * @param iov the address of the iovec array
     * @param iovcnt how many iovecs
     * @param offset the offset in the file
     * @return bytes written, or {@code -errno}
     */
    public static long pwritev(int fd, long iov, int iovcnt, long offset) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long r = (long) PWRITEV.invokeExact(state, fd, iov, iovcnt, offset);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code ioctl(fd, request, &value)} for a request that writes one 64-bit value (BLKGETSIZE64, say): the value,
     * or {@code -errno}.
     *
     * @param fd the file descriptor
     * @param request the ioctl request
     * @return {@code ioctl(fd, request, &value)} for a request that writes one 64-bit value (BLKGETSIZE64, say): the
     *         value, or {@code -errno}
     */
    public static long ioctlReadLong(int fd, long request) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = CALL_STATE_BUFFER.get();
            MemorySegment out = arena.allocate(JAVA_LONG);
            int r = (int) IOCTL_PTR.invokeExact(state, fd, request, out);
            return r < 0 ? -errno(state) : out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code io_uring_setup(entries, params)}: the ring's fd, or {@code -errno}.
     *
     * @param entries the number of submission queue entries
     * @param params a zeroed {@code struct io_uring_params}, filled by the kernel
     * @return {@code io_uring_setup(entries, params)}: the ring's fd, or {@code -errno}
     */
    public static int ioUringSetup(int entries, MemorySegment params) {
        return (int) syscall(SYS_IO_URING_SETUP, Integer.toUnsignedLong(entries), params.address(), 0, 0, 0, 0);
    }

    /**
     * {@code io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)}: SQEs consumed, or {@code -errno}.
     *
     * @param fd the file descriptor
     * @param toSubmit SQEs to submit
     * @param minComplete completions to wait for ({@code flags} with {@code IORING_ENTER_GETEVENTS})
     * @param flags the {@code IORING_ENTER_*} flags
     * @return {@code io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)}: SQEs consumed, or {@code -errno}
     */
    public static int ioUringEnter(int fd, int toSubmit, int minComplete, int flags) {
        return (int) syscall(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0);
    }

    /**
     * {@code io_uring_register(fd, opcode, arg, nrArgs)}: 0 or a count on success, or {@code -errno}. A ring set up
     * with {@code IORING_SETUP_SINGLE_ISSUER} (Netty's are) takes it only from the thread that submits to it.
     *
     * @param fd the ring's file descriptor
     * @param opcode the {@code IORING_REGISTER_*} opcode
     * @param arg the address of the opcode's argument
     * @param nrArgs the opcode's count or argument size
     * @return the result, or {@code -errno}
     */
    public static int ioUringRegister(int fd, int opcode, long arg, int nrArgs) {
        return (int) syscall(SYS_IO_URING_REGISTER, fd, opcode, arg, nrArgs, 0, 0);
    }

    /**
     * {@code prctl(option, arg2, arg3, arg4, arg5)} for the calling thread: the call's non-negative result, or
     * {@code -errno}.
     *
     * @param option the {@code PR_*} option, such as {@link #PR_SET_IO_FLUSHER}
     * @param arg2 the option's first argument (0 when it has none)
     * @param arg3 the second (0 when it has none: the kernel refuses others with EINVAL for many options)
     * @param arg4 the third
     * @param arg5 the fourth
     * @return the result, or {@code -errno}
     */
    public static int prctl(int option, long arg2, long arg3, long arg4, long arg5) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) PRCTL.invokeExact(state, option, arg2, arg3, arg4, arg5);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code mlockall(flags)} for the whole process: 0, or {@code -errno} (EPERM: RLIMIT_MEMLOCK is 0 and no
     * CAP_IPC_LOCK; ENOMEM: the process maps more than RLIMIT_MEMLOCK allows). With {@link #MCL_CURRENT} it faults in
     * every mapped page before it returns, which takes as long as reading them.
     *
     * @param flags {@link #MCL_CURRENT} and/or {@link #MCL_FUTURE}
     * @return 0, or {@code -errno}
     */
    public static int mlockall(int flags) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) MLOCKALL.invokeExact(state, flags);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code getrlimit(resource)}: the soft and hard limit ({@link #RLIM_INFINITY} for none) written to
     * {@code limits[0]} and {@code limits[1]}; 0, or {@code -errno}.
     *
     * @param resource the {@code RLIMIT_*} resource, such as {@link #RLIMIT_MEMLOCK}
     * @param limits an array of at least two, which receives the soft and hard limit
     * @return 0, or {@code -errno}
     */
    public static int getrlimit(int resource, long[] limits) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = CALL_STATE_BUFFER.get();
            MemorySegment out = arena.allocate(JAVA_LONG, 2);
            int r = (int) GETRLIMIT.invokeExact(state, resource, out);
            if (r < 0) {
                return -errno(state);
            }
            limits[0] = out.getAtIndex(JAVA_LONG, 0);
            limits[1] = out.getAtIndex(JAVA_LONG, 1);
            return 0;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static long syscall(long nr, long a, long b, long c, long d, long e, long f) {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long r = (long) SYSCALL6.invokeExact(state, nr, a, b, c, d, e, f);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static long sysconf(int name) {
        try {
            return (long) SYSCONF.invokeExact(name);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}

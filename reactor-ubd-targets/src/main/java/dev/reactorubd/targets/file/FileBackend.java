package dev.reactorubd.targets.file;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.RequestChecks;
import dev.reactorubd.server.ZeroCopyBackend;
import dev.reactorubd.uring.IoUringAbi;
import dev.reactorubd.uring.Libc;
import dev.reactorubd.uring.LoopIo;
import dev.reactorubd.uring.Sqe;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.scheduler.Schedulers;

/**
 * A regular file or a block device as a device's store, with its IO on io_uring.
 *
 * <pre>{@code
 * FileBackend file = FileBackend.open(Path.of("/var/lib/disk.img"), FileBackend.Options.defaults().direct(true));
 * UbdDevice dev = server.serve(DeviceSpec.builder().capacityBytes(file.size()).build(), file).block();
 * }</pre>
 *
 * <h2>IO</h2>
 * Each queue's requests become io_uring operations on that queue's own event loop ({@link #bind}): READ and WRITE
 * (continued until every byte is moved: a short transfer is never reported as done; a read past the end of a file
 * that shrank reads zeros), FLUSH as {@code fdatasync}, FUA as a write with {@code RWF_DSYNC}, DISCARD as a punched
 * hole (on a block device: {@code BLOCK_URING_CMD_DISCARD}, Linux 6.12+), WRITE_ZEROES as {@code fallocate}
 * (ZERO_RANGE when the range must stay allocated, else PUNCH_HOLE), falling back to writing zeros where the file system
 * refuses. There is no thread pool and no blocking call on the loop. A caller that did not bind (a request issued
 * straight on this object, a background copy) is served on one io_uring loop of this backend's own, made on first use.
 *
 * <h2>Zero copy</h2>
 * A buffered file advertises {@link Capability#ZERO_COPY}: on kernels with ublk's AUTO_BUF_REG (Linux 6.16), {@link
 * dev.reactorubd.server.UbdServer} adds its devices with it, and each queue's READ and WRITE requests move between the
 * page cache and the request's own pages with {@code READ_FIXED}/{@code WRITE_FIXED} on the queue's ring, through no
 * buffer of ours. Elsewhere, and for requests the kernel could not register, data is copied as usual. An O_DIRECT
 * file keeps copying: ublk guarantees request pages only a 4-byte alignment, which O_DIRECT would refuse.
 *
 * <h2>Modes</h2>
 * Buffered by default (through the page cache; FLUSH makes it durable). {@link Options#direct(boolean) O_DIRECT}
 * bypasses the cache: WRITE data then arrives in buffers aligned to 4096 bytes, carved from the application's
 * allocator ({@link #allocator()}), and the device's logical block size must be a multiple of the backing store's (512
 * or 4096; 4096 is always safe). {@link Options#readOnly(boolean) Read-only} opens the file read-only: writes, discards
 * and zeroing fail with EROFS, and the capabilities advertise none of them (serve it with a read-only DeviceSpec).
 *
 * <h2>Errors</h2>
 * {@link #open} throws {@link UbdException} saying what to do (missing file, no permission, O_DIRECT refused by the
 * file system, an empty file). A failed operation fails its request with the kernel's errno (ENOSPC, EIO...); an
 * offset beyond {@link #size()} fails with EINVAL.
 *
 * <h2>Ownership</h2>
 * The application owns the backend: {@link #close()} it after the devices it serves are closed.
 */
public final class FileBackend implements BlockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(FileBackend.class);
    private static final AtomicInteger OWN_LOOPS = new AtomicInteger();
    /** Alignment of O_DIRECT buffers: the largest logical block size ublk allows, so right for any backing store. */
    static final int DIRECT_ALIGNMENT = 4096;
    /** Size of the zero buffer written where the file system cannot zero a range itself. */
    private static final int ZERO_CHUNK = 1 << 20;

    private final Path path;
    private final int fd;
    private final long size;
    private final boolean blockDevice;
    private final boolean direct;
    private final boolean readOnly;
    private final ByteBufAllocator allocator;
    private final AlignedAllocator aligned;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Cleared once the file system refused fallocate for zeroing: from then on zeros are written. */
    private volatile boolean fallocateZeroes = true;

    private volatile ByteBuf zeros;
    private volatile MultiThreadIoEventLoopGroup ownLoop;
    /** Writes given up while in the kernel, which later overlapping writes wait for. */
    private final GivenUpWrites givenUp = new GivenUpWrites();
    /** What this file's transfers need of it. */
    private final FileTransfer.OpenFile file;

    private final Mono<Bound> own;
    /** The own loop's LoopIo, once made: a close lets its operations in flight end first. */
    private volatile LoopIo ownIo;

    /**
     * How a file is opened.
     *
     * @param direct open with O_DIRECT, bypassing the page cache
     * @param readOnly open read-only
     * @param createSize create a missing file, or extend a shorter one, to this many bytes (sparse); 0 for neither
     * @param allocator where read data and (with O_DIRECT, aligned) write data live
     */
    public record Options(boolean direct, boolean readOnly, long createSize, ByteBufAllocator allocator) {
        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException when {@code createSize} is negative
         * @throws NullPointerException when {@code allocator} is null
         */
        public Options {
            Objects.requireNonNull(allocator, "allocator");
            if (createSize < 0) {
                throw new IllegalArgumentException("createSize must not be negative; was " + createSize);
            }
        }

        /** {@return buffered, read-write, no file created, Netty's pooled allocator} */
        public static Options defaults() {
            return new Options(false, false, 0, PooledByteBufAllocator.DEFAULT);
        }

        /**
         * O_DIRECT: bypass the page cache. WRITE data then arrives in 4096-aligned buffers of an aligned allocator.
         *
         * @param direct whether to open with O_DIRECT
         * @return a copy of these options with that changed
         */
        public Options direct(boolean direct) {
            return new Options(direct, readOnly, createSize, allocator);
        }

        /**
         * Open read-only; serve the file with a read-only device spec.
         *
         * @param readOnly whether to open read-only
         * @return a copy of these options with that changed
         */
        public Options readOnly(boolean readOnly) {
            return new Options(direct, readOnly, createSize, allocator);
        }

        /**
         * Create the file when it is missing, and make it at least this long (sparse) when it is shorter; 0 (the
         * default) creates nothing and uses the file as it is. Ignored for block devices.
         *
         * @param bytes the size in bytes
         * @return a copy of these options with that changed
         */
        public Options createSize(long bytes) {
            return new Options(direct, readOnly, bytes, allocator);
        }

        /**
         * Where read data and (with O_DIRECT, aligned) write data live.
         *
         * @param allocator an allocator of direct buffers
         * @return a copy of these options with that changed
         */
        public Options allocator(ByteBufAllocator allocator) {
            return new Options(direct, readOnly, createSize, allocator);
        }
    }

    private FileBackend(Path path, int fd, long size, boolean blockDevice, Options options) {
        this.path = path;
        this.fd = fd;
        this.file = new FileTransfer.OpenFile(fd, path, givenUp);
        this.size = size;
        this.blockDevice = blockDevice;
        this.direct = options.direct();
        this.readOnly = options.readOnly();
        this.aligned = direct ? new AlignedAllocator(options.allocator(), DIRECT_ALIGNMENT) : null;
        this.allocator = direct ? aligned : options.allocator();
        this.own = Mono.defer(() -> {
                    MultiThreadIoEventLoopGroup g = new MultiThreadIoEventLoopGroup(
                            1,
                            new DefaultThreadFactory("ubd-file-" + OWN_LOOPS.incrementAndGet(), true),
                            IoUringIoHandler.newFactory());
                    ownLoop = g;
                    return LoopIo.register(g.next()).map(io -> {
                        ownIo = io;
                        return new Bound(io);
                    });
                })
                .cache();
    }

    /**
     * Opens a file or block device with the default options (buffered, read-write).
     *
     * @param path a regular file or a block device
     * @return the backend, opened; close it after the devices it serves
     */
    public static FileBackend open(Path path) {
        return open(path, Options.defaults());
    }

    /**
     * Opens a file or block device. Blocks while it opens (and creates) the file: call it off event loops.
     *
     * <p>The path is the application's own: it is followed through symbolic links. What it names is checked before
     * it is opened for IO: it is first opened with {@code O_PATH} (which opens no device and never blocks on a FIFO),
     * checked with {@code fstat} to be a regular file or a block device, and only then opened for reading and writing
     * through that descriptor, so that nothing else (a character device, a FIFO, a file swapped in meanwhile) is ever
     * opened. With {@link Options#createSize(long)} a missing file is created and a shorter regular file extended on
     * its descriptor after that check. A caller that takes paths from others applies a policy first: {@code
     * dev.reactorubd.targets.spec.TargetPolicy}, through {@code TargetSpec.open}.
     *
     * @param path a regular file or a block device
     * @param options how to open it
     * @return the backend, opened; close it after the devices it serves
     * @throws UbdException when the file cannot be used, saying why and what to do
     */
    public static FileBackend open(Path path, Options options) {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options");
        int pathFd = Libc.openat(Libc.AT_FDCWD, path.toString(), Libc.O_PATH | Libc.O_CLOEXEC, 0);
        if (pathFd == -Errno.ENOENT && options.createSize() > 0 && !options.readOnly()) {
            // Created here, so a regular file: the descriptor is checked and reopened like any other.
            pathFd = Libc.openat(
                    Libc.AT_FDCWD, path.toString(), Libc.O_CREAT | Libc.O_RDWR | Libc.O_CLOEXEC | Libc.O_NOCTTY, 0644);
        }
        if (pathFd == -Errno.ENOENT) {
            throw new UbdException(path + " does not exist: create it, or give a size to create it with", Errno.ENOENT);
        }
        if (pathFd < 0) {
            throw new UbdException(openError(path, options, -pathFd), -pathFd);
        }
        return open(path, pathFd, options, true, false);
    }

    /**
     * Opens the file that a descriptor names (typically an {@code O_PATH} one, from {@code openat} with
     * {@code O_NOFOLLOW} below a directory a policy allows), taking ownership of {@code pathFd}: it is closed before
     * this returns or throws. The descriptor is checked with {@code fstat} before anything is opened for IO (a regular
     * file, or a block device where {@code blockDevices} allows it), the file is then opened for IO through {@code
     * /proc/self/fd/N} (the same inode, whatever its path names by now), and that descriptor is checked again to be the
     * same file. With {@link Options#createSize(long)} a shorter regular file is extended on the descriptor (never a
     * read-only one). The size comes from the descriptor. Blocks while it opens: call it off event loops.
     *
     * @param path the file's name, for messages and {@link #path()}
     * @param pathFd a descriptor of the file (any open mode, {@code O_PATH} included), closed by this call
     * @param options how to open it
     * @param blockDevices whether a block device is accepted (else only a regular file)
     * @param exclusive open a block device with {@code O_EXCL}, which fails with EBUSY while it is mounted or held
     * @return the backend, opened; close it after the devices it serves
     * @throws UbdException when the file cannot be used (not a regular file, no permission, no /proc), saying why
     */
    public static FileBackend open(Path path, int pathFd, Options options, boolean blockDevices, boolean exclusive) {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options");
        int fd = -1;
        try {
            long[] named = new long[Libc.STAT_VALUES];
            int r = Libc.fstat(pathFd, named);
            if (r < 0) {
                throw new UbdException("cannot stat " + path + ": " + Errno.describe(-r), -r);
            }
            int type = (int) named[Libc.STAT_MODE] & Libc.S_IFMT;
            boolean blockDevice = type == Libc.S_IFBLK;
            if (type != Libc.S_IFREG && !(blockDevice && blockDevices)) {
                throw new UbdException(
                        path + " is " + describeType(type) + ", neither a regular file nor a block "
                                + "device" + (blockDevices ? "" : " this caller accepts") + ": serve a regular file"
                                + (blockDevices ? " or a block device" : ""),
                        Errno.EINVAL);
            }
            int flags = (options.readOnly() ? Libc.O_RDONLY : Libc.O_RDWR)
                    | Libc.O_CLOEXEC
                    | Libc.O_NOCTTY
                    | (options.direct() ? Libc.O_DIRECT : 0)
                    | (blockDevice && exclusive ? Libc.O_EXCL : 0);
            fd = Libc.open("/proc/self/fd/" + pathFd, flags);
            if (fd == -Errno.ENOENT) {
                throw new UbdException("cannot open " + path + " through /proc/self/fd: mount /proc", Errno.ENOENT);
            }
            if (fd < 0) {
                throw new UbdException(openError(path, options, -fd), -fd);
            }
            long[] opened = new long[Libc.STAT_VALUES];
            r = Libc.fstat(fd, opened);
            if (r < 0
                    || opened[Libc.STAT_DEV] != named[Libc.STAT_DEV]
                    || opened[Libc.STAT_INO] != named[Libc.STAT_INO]) {
                throw new UbdException(
                        "cannot open " + path + ": the file changed while it was opened; try again", Errno.EAGAIN);
            }
            long size;
            if (blockDevice) {
                size = Libc.ioctlReadLong(fd, IoUringAbi.BLKGETSIZE64);
            } else {
                size = opened[Libc.STAT_SIZE];
                if (options.createSize() > size && !options.readOnly()) {
                    r = Libc.ftruncate(fd, options.createSize());
                    if (r < 0) {
                        throw new UbdException(
                                "cannot make " + path + " " + options.createSize() + " bytes long: "
                                        + Errno.describe(-r),
                                -r);
                    }
                    size = options.createSize();
                }
            }
            if (size <= 0) {
                throw new UbdException(
                        size == 0
                                ? path + " is empty: give the file a size first (truncate -s 1G " + path
                                        + ", or a create size)"
                                : "cannot read the size of block device " + path + ": " + Errno.describe((int) size),
                        size == 0 ? Errno.EINVAL : (int) -size);
            }
            FileBackend b = new FileBackend(path, fd, size, blockDevice, options);
            fd = -1;
            LOG.info("opened {}", b);
            return b;
        } finally {
            Libc.close(pathFd);
            if (fd >= 0) {
                Libc.close(fd);
            }
        }
    }

    /**
     * What a file type is, for messages.
     *
     * @param type the {@code S_IFMT} bits of {@code st_mode}
     * @return "a directory", "a FIFO"...
     */
    public static String describeType(int type) {
        return switch (type) {
            case Libc.S_IFREG -> "a regular file";
            case Libc.S_IFBLK -> "a block device";
            case Libc.S_IFCHR -> "a character device";
            case Libc.S_IFDIR -> "a directory";
            case Libc.S_IFIFO -> "a FIFO";
            case Libc.S_IFLNK -> "a symbolic link";
            case Libc.S_IFSOCK -> "a socket";
            default -> "of an unknown type";
        };
    }

    private static String openError(Path path, Options options, int errno) {
        String why = "cannot open " + path + ": " + Errno.describe(-errno);
        return switch (errno) {
            case Errno.EINVAL ->
                options.direct()
                        ? why + "; its file system does not support O_DIRECT (tmpfs, "
                                + "say): open it buffered, or move it"
                        : why;
            case Errno.EACCES, Errno.EPERM -> why + "; check its permissions, or open it read-only";
            case Errno.EROFS -> why + "; the file system is read-only: open it read-only";
            case Errno.EBUSY -> why + "; the block device is in use (mounted, or held by another driver)";
            default -> why;
        };
    }

    /** {@return the file or block device} */
    public Path path() {
        return path;
    }

    /** {@return whether the store is a block device (else a regular file)} */
    public boolean isBlockDevice() {
        return blockDevice;
    }

    /** {@return whether IO bypasses the page cache} */
    public boolean isDirect() {
        return direct;
    }

    /** {@return whether the file was opened read-only} */
    public boolean isReadOnly() {
        return readOnly;
    }

    /** The size of the file, or of the block device, when it was opened. */
    @Override
    public long size() {
        return size;
    }

    @Override
    public Set<Capability> capabilities() {
        EnumSet<Capability> caps = readOnly
                ? EnumSet.noneOf(Capability.class)
                : EnumSet.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD, Capability.WRITE_ZEROES);
        if (!direct) {
            caps.add(Capability.ZERO_COPY); // see the class comment: O_DIRECT would refuse ublk's alignment
        }
        return caps;
    }

    /** The application's allocator; with O_DIRECT, a view of it that aligns buffers to 4096 bytes. */
    @Override
    public ByteBufAllocator allocator() {
        return allocator;
    }

    /** A backend that submits its IO on {@code queue}'s io_uring loop, and leaves that loop when the queue ends. */
    @Override
    public Mono<BlockBackend> bind(UbdQueue queue) {
        return LoopIo.register(queue.loop()).map(io -> {
            // A mirror's resync may still read through it when its queue ends: let that finish and release first.
            queue.onTerminated().doFinally(s -> io.closeWhenIdleOnLoop()).subscribe(null, e -> {});
            return new Bound(io);
        });
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return own.flatMap(b -> b.read(offset, length, allocator));
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return own.flatMap(b -> b.write(offset, data, fua));
    }

    @Override
    public Mono<Void> flush() {
        return own.flatMap(Bound::flush);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return own.flatMap(b -> b.discard(offset, length));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return own.flatMap(b -> b.writeZeroes(offset, length, noUnmap));
    }

    /**
     * Closes the file, and this backend's own loop if it made one. Requests issued afterwards fail (EBADF). Close it
     * after the devices it serves.
     */
    @Override
    public Mono<Void> close() {
        return Mono.fromRunnable(() -> {
                    if (!closed.compareAndSet(false, true)) {
                        return;
                    }
                    MultiThreadIoEventLoopGroup g = ownLoop;
                    LoopIo io = ownIo;
                    if (io != null) {
                        // Operations in flight when the loop stops never complete, and their buffers are lost: let them
                        // end
                        // (file operations take milliseconds; bounded anyway).
                        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                        try {
                            while (io.loop().submit(io::inFlight).get(1, TimeUnit.SECONDS) > 0
                                    && System.nanoTime() < end) {
                                Thread.sleep(2);
                            }
                        } catch (Exception e) {
                            LOG.debug("{}: not waiting for its own loop's operations: {}", this, e.toString());
                        }
                    }
                    if (g != null) {
                        g.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
                    }
                    Libc.close(fd);
                    ByteBuf z = zeros;
                    if (z != null) {
                        z.release();
                    }
                    LOG.info("closed {}", this);
                })
                .subscribeOn(Schedulers.boundedElastic())
                .then();
    }

    @Override
    public String toString() {
        return "file(" + path + ", " + size + " bytes" + (blockDevice ? ", block device" : "")
                + (direct ? ", O_DIRECT" : "") + (readOnly ? ", read-only" : "") + ")";
    }

    private Mono<Void> checkRange(long offset, long length, long size) {
        return RequestChecks.checkRange(size, offset, length, this);
    }

    private UbdIoException failure(String what, int res) {
        return FileTransfer.failure(path, what, res);
    }

    private ByteBuf zeros() {
        ByteBuf z = zeros;
        if (z == null) {
            synchronized (this) {
                z = zeros;
                if (z == null) {
                    z = allocator.directBuffer(ZERO_CHUNK, ZERO_CHUNK);
                    z.writeZero(ZERO_CHUNK);
                    zeros = z;
                }
            }
        }
        return z;
    }

    /**
     * This backend bound to one io_uring loop: every operation is submitted there, including those from a request's
     * registered pages (zero copy), which live in that loop's ring.
     */
    private final class Bound implements ZeroCopyBackend {
        private final LoopIo io;

        Bound(LoopIo io) {
            this.io = io;
        }

        /**
         * {@link #onLoop}, unless the backend is closed: a request that comes after {@link #close()} started is
         * refused before it allocates anything, so that the close's wait for what is in flight sees every request.
         */
        private void onLoopIfOpen(MonoSink<?> sink, Runnable start) {
            if (closed.get()) {
                sink.error(new UbdIoException(Errno.EBADF, path + " is closed"));
                return;
            }
            onLoop(sink, start);
        }

        /** Runs {@code start} on the loop: at once when already there (the queue's case). */
        private void onLoop(MonoSink<?> sink, Runnable start) {
            if (io.loop().inEventLoop()) {
                start.run();
                return;
            }
            try {
                io.loop().execute(start);
            } catch (RejectedExecutionException e) {
                sink.error(new UbdIoException(Errno.EIO, "the io_uring loop of " + path + " is shut down"));
            }
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator alloc) {
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad.then(Mono.empty());
            }
            return Mono.defer(() -> {
                FileTransfer.Unclaimed unclaimed = new FileTransfer.Unclaimed();
                // A given-up write may still land: a read waits for it, so that it reads one content. Its buffer is
                // allocated once it may start, on the loop: a wait that never ends (the loop shut down under it)
                // leaves nothing to release, and a read cancelled meanwhile gives its buffer back at once.
                return Mono.<ByteBuf>create(sink -> onLoopIfOpen(
                                sink,
                                () -> givenUp.whenClear(
                                        offset,
                                        length,
                                        () -> onLoop(sink, () -> {
                                            ByteBuf buf = (direct ? aligned : alloc).directBuffer(length, length);
                                            if (!Buffers.isContiguousDirect(buf)) {
                                                buf.release();
                                                sink.error(new UbdIoException(
                                                        Errno.EIO,
                                                        alloc + " gave a buffer without one native address"));
                                                return;
                                            }
                                            FileTransfer.read(file, io, offset, buf, length, sink, unclaimed)
                                                    .start();
                                        }))))
                        // A read whose subscriber went away meanwhile still owns its buffer: release it.
                        .doOnDiscard(ByteBuf.class, unclaimed::release);
            });
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            if (readOnly) {
                return Mono.error(RequestChecks.readOnly("a write", FileBackend.this));
            }
            int length = data.readableBytes();
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad;
            }
            return Mono.create(sink -> onLoopIfOpen(sink, () -> {
                ByteBuf buf;
                if (direct ? aligned.isAligned(data) : Buffers.isContiguousDirect(data)) {
                    buf = data.retainedSlice();
                } else {
                    // Composed backends may hand over heap, composite or unaligned data: copy it once.
                    buf = allocator.directBuffer(length, length).writeBytes(data, data.readerIndex(), length);
                }
                FileTransfer t = FileTransfer.write(file, io, offset, buf, fua, sink);
                givenUp.whenClear(offset, length, () -> onLoop(sink, t::start));
            }));
        }

        @Override
        public Mono<Void> readInto(long offset, int length, int bufferIndex) {
            return readInto(offset, length, bufferIndex, null);
        }

        @Override
        public Mono<Void> readInto(long offset, int length, int bufferIndex, Runnable linkedCommit) {
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad;
            }
            return Mono.create(sink -> onLoopIfOpen(sink, () -> {
                FileTransfer t = FileTransfer.readInto(file, io, offset, length, bufferIndex, sink);
                givenUp.whenClear(offset, length, () -> onLoop(sink, () -> t.start(linkedCommit)));
            }));
        }

        @Override
        public Mono<Void> writeFrom(long offset, int length, int bufferIndex, boolean fua) {
            return writeFrom(offset, length, bufferIndex, fua, null);
        }

        @Override
        public Mono<Void> writeFrom(long offset, int length, int bufferIndex, boolean fua, Runnable linkedCommit) {
            if (readOnly) {
                return Mono.error(RequestChecks.readOnly("a write", FileBackend.this));
            }
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad;
            }
            return Mono.create(sink -> onLoopIfOpen(sink, () -> {
                FileTransfer t = FileTransfer.writeFrom(file, io, offset, length, bufferIndex, fua, sink);
                givenUp.whenClear(offset, length, () -> onLoop(sink, () -> t.start(linkedCommit)));
            }));
        }

        @Override
        public Mono<Void> flush() {
            return simple("fdatasync", Sqe.fsync(fd, IoUringAbi.FSYNC_DATASYNC));
        }

        @Override
        public Mono<Void> discard(long offset, long length) {
            if (readOnly) {
                return Mono.error(RequestChecks.readOnly("a discard", FileBackend.this));
            }
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad;
            }
            return blockDevice
                    ? simple("discard", Sqe.blockDiscard(fd, offset, length))
                    : fallocate("punching a hole", offset, length, IoUringAbi.FALLOC_FL_PUNCH_HOLE);
        }

        @Override
        public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
            if (readOnly) {
                return Mono.error(RequestChecks.readOnly("a write of zeroes", FileBackend.this));
            }
            Mono<Void> bad = checkRange(offset, length, size);
            if (bad != null) {
                return bad;
            }
            if (!fallocateZeroes) {
                return writeZeros(offset, length);
            }
            int mode = noUnmap ? IoUringAbi.FALLOC_FL_ZERO_RANGE : IoUringAbi.FALLOC_FL_PUNCH_HOLE;
            return fallocate("zeroing", offset, length, mode)
                    .onErrorResume(
                            e -> e instanceof UbdIoException x
                                    && (x.errno() == Errno.EOPNOTSUPP || x.errno() == Errno.EINVAL),
                            e -> {
                                if (((UbdIoException) e).errno() == Errno.EOPNOTSUPP) {
                                    fallocateZeroes = false;
                                    LOG.info("{} cannot zero ranges with fallocate: writing zeros instead", path);
                                }
                                return writeZeros(offset, length);
                            });
        }

        private Mono<Void> fallocate(String what, long offset, long length, int mode) {
            return simple(what, Sqe.fallocate(fd, mode | IoUringAbi.FALLOC_FL_KEEP_SIZE, offset, length));
        }

        /** Writes zeros over a range, a chunk at a time, from one shared zero buffer. */
        private Mono<Void> writeZeros(long offset, long length) {
            ByteBuf z = zeros();
            return Flux.range(0, (int) ((length + ZERO_CHUNK - 1) / ZERO_CHUNK))
                    .concatMap(
                            i -> {
                                long at = offset + (long) i * ZERO_CHUNK;
                                int n = (int) Math.min(ZERO_CHUNK, offset + length - at);
                                return write(at, z.slice(0, n), false);
                            },
                            0)
                    .then();
        }

        /** One operation without data: its result is success (>= 0) or the errno. */
        private Mono<Void> simple(String what, Sqe sqe) {
            return Mono.create(sink -> onLoop(
                    sink,
                    () -> io.submit(sqe, res -> {
                        if (res < 0) {
                            sink.error(failure(what, res));
                        } else {
                            sink.success();
                        }
                    })));
        }

        @Override
        public Set<Capability> capabilities() {
            return FileBackend.this.capabilities();
        }

        @Override
        public ByteBufAllocator allocator() {
            return allocator;
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public String toString() {
            return FileBackend.this + " on " + io.loop();
        }
    }
}

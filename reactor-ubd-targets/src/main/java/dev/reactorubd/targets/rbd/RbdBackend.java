package dev.reactorubd.targets.rbd;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.RequestChecks;
import dev.reactorubd.targets.rbd.RbdException.Reason;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * A Ceph RBD image, served through librbd (Ceph's own client library, called through {@code java.lang.foreign}):
 * the distributed store's RPCs, replication and caching are librbd's, on librbd's threads.
 *
 * <h2>Opening</h2>
 * {@link #open(RbdImageSpec, RbdOptions)} connects to the cluster (cephx), opens the image read-write, or a snapshot
 * read-only, and reads its size; off the event loops, within {@link RbdOptions#connectTimeout()}. Each failure is an
 * {@link RbdException} whose {@link RbdException#reason()} names the cause (libraries missing, no monitor, a refused
 * key, no such pool, image or snapshot). librados and librbd are loaded on the first open, not before.
 *
 * <h2>Requests</h2>
 * READ, WRITE, FLUSH, DISCARD and WRITE_ZEROES are librbd's asynchronous calls ({@code rbd_aio_read}, {@code
 * rbd_aio_write2}, {@code rbd_aio_flush}, {@code rbd_aio_discard}, {@code rbd_aio_write_zeroes}): the method submits and
 * returns, and librbd's completion, on one of its own threads, signals the request's Mono; no thread waits. Data moves
 * between librbd and the request's own buffer (a direct buffer's address): a read's buffer comes from the queue's
 * allocator, a write's data is the buffer the server read it into. A buffer stays held until librbd has completed,
 * even when the request was cancelled, so that librbd never touches released memory.
 * <ul>
 *   <li>FUA: a write, then {@code rbd_aio_flush} once it completed (librbd's cache may acknowledge a write before its
 *       OSD commits it; the flush waits for the commit).</li>
 *   <li>DISCARD is advisory (librbd drops the parts smaller than its discard granularity); WRITE_ZEROES always zeroes,
 *       with NOUNMAP by writing zeros (thick), otherwise by discarding whole objects and zeroing the rest.</li>
 *   <li>Errors: librbd's errno fails the request ({@code ETIMEDOUT} after {@link RbdOptions#osdTimeout()}, {@code
 *       ESHUTDOWN} once the client is blocklisted, {@code EROFS} on a snapshot).</li>
 *   <li>A request the server gives up (its request timeout) is over for the server but not for librbd: a write may
 *       still land. librbd keeps overlapping writes in submission order, so it lands before any later write of the
 *       same range; keep {@link RbdOptions#osdTimeout()} below the server's request timeout so that librbd gives it up
 *       first.</li>
 * </ul>
 *
 * <h2>Size</h2>
 * {@link #size()} is the image's size; a resize of the image by anyone (librbd's header watch, read-write opens only)
 * updates it and is published on {@link #sizeChanges()}, which an application passes to {@code UbdDevice.resize}
 * where the kernel has UPDATE_SIZE. Requests are checked against the size of the moment.
 *
 * <h2>Threads</h2>
 * Every method may be called on any thread and returns at once; the backend serves every queue as it is (librbd is
 * thread-safe). Mono signals arrive on librbd's threads. {@link #close()} waits for the operations in flight, closes
 * the image (librbd flushes its cache) and the cluster handle, off the event loops.
 */
public final class RbdBackend implements BlockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(RbdBackend.class);
    /** How long {@link #close()} waits for librbd to close the image (its cache flushed to the OSDs). */
    private static final Duration CLOSE_BOUND = Duration.ofSeconds(60);

    private final RbdImage image;
    private final Librbd lib;
    private final RbdOptions options;
    private final AtomicLong size;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Submissions under way: {@link #close()} waits for them before librbd frees the image handle. */
    private final AtomicInteger submitting = new AtomicInteger();
    /** Operations submitted and not completed. */
    private final AtomicInteger inFlight = new AtomicInteger();

    private final Sinks.Many<Long> sizes = Sinks.many().multicast().directBestEffort();
    private final AtomicBoolean refreshing = new AtomicBoolean();
    private final AtomicBoolean refreshAgain = new AtomicBoolean();
    private volatile RbdImage.Watch watch;
    private volatile Mono<Void> closing;

    private RbdBackend(RbdImage image, RbdOptions options, long size) {
        this.image = image;
        this.lib = image.lib;
        this.options = options;
        this.size = new AtomicLong(size);
    }

    /**
     * Opens an image: lazy, off the event loops, within {@link RbdOptions#connectTimeout()}.
     *
     * @param spec the image, its cluster's configuration and the client
     * @param options bounds and librados options
     * @return a Mono of the backend; close it when done. Errors: {@link RbdException} naming the cause
     */
    public static Mono<RbdBackend> open(RbdImageSpec spec, RbdOptions options) {
        return Mono.defer(() -> {
            Opening opening = new Opening(spec, options);
            return Mono.fromCallable(opening::run)
                    .subscribeOn(Schedulers.boundedElastic())
                    .timeout(
                            options.connectTimeout(),
                            Mono.error(() -> new RbdException(
                                    Reason.UNREACHABLE,
                                    "cannot open RBD image " + spec.imageName() + " as client." + spec.clientId()
                                            + ": not open after " + options.connectTimeout()
                                            + "; check that the cluster is up (ceph -s) and that the configuration "
                                            + "names its monitors",
                                    Errno.ETIMEDOUT,
                                    null)))
                    .doOnCancel(opening::abandon)
                    .doOnError(e -> opening.abandon());
        });
    }

    /**
     * {@link #open(RbdImageSpec, RbdOptions)} of a parsed spec with {@link RbdOptions#defaults()}.
     *
     * @param spec {@code rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH]}
     * @return a Mono of the backend
     */
    public static Mono<RbdBackend> open(String spec) {
        return Mono.defer(() -> open(RbdImageSpec.parse(spec), RbdOptions.defaults()));
    }

    /** {@return whether librados and librbd can be loaded in this process} */
    public static boolean librariesAvailable() {
        return Librbd.available();
    }

    /**
     * One open under way: if its Mono gave up (timeout, cancel) before the blocking open finished, the open's result
     * is closed as soon as it arrives.
     */
    private static final class Opening {
        private final RbdImageSpec spec;
        private final RbdOptions options;
        private RbdBackend result;
        private boolean abandoned;

        Opening(RbdImageSpec spec, RbdOptions options) {
            this.spec = spec;
            this.options = options;
        }

        RbdBackend run() {
            RbdImage image = RbdImage.open(spec, options);
            RbdBackend b;
            try {
                b = new RbdBackend(image, options, image.size());
                if (!spec.readOnly()) {
                    b.watch = image.watch(b::headerChanged);
                }
            } catch (RuntimeException e) {
                image.close();
                throw e;
            }
            synchronized (this) {
                if (!abandoned) {
                    result = b;
                    LOG.info("opened {} ({} bytes{})", b, b.size(), spec.readOnly() ? ", read-only" : "");
                    return b;
                }
            }
            b.closeNow();
            throw new RbdException(Reason.OTHER, "the open of " + spec.imageName() + " was abandoned", 0, null);
        }

        void abandon() {
            RbdBackend b;
            synchronized (this) {
                abandoned = true;
                b = result;
            }
            if (b != null) {
                b.close().subscribe();
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ what it is

    /** {@return the image served} */
    public RbdImageSpec spec() {
        return image.spec;
    }

    /** {@return the options it was opened with} */
    public RbdOptions options() {
        return options;
    }

    /** {@return whether it serves a snapshot, read-only} */
    public boolean readOnly() {
        return image.spec.readOnly();
    }

    /** {@return the image's size in bytes, as librbd last told it} */
    @Override
    public long size() {
        return size.get();
    }

    /**
     * The image's new size after each resize seen while open (read-write opens only; a snapshot's size never
     * changes). Hot: only changes after the subscription; completes when the backend closes.
     *
     * @return the sizes, in bytes
     */
    public Flux<Long> sizeChanges() {
        return sizes.asFlux();
    }

    /** {@return operations submitted to librbd and not yet completed} */
    public int inFlight() {
        return inFlight.get();
    }

    @Override
    public Set<Capability> capabilities() {
        return readOnly()
                ? EnumSet.noneOf(Capability.class)
                : EnumSet.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD, Capability.WRITE_ZEROES);
    }

    /** Write data that is not one direct region is copied into buffers of this allocator first. */
    @Override
    public ByteBufAllocator allocator() {
        return PooledByteBufAllocator.DEFAULT;
    }

    // ------------------------------------------------------------------------------------------------ requests

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        Mono<ByteBuf> bad = RequestChecks.checkRange(size.get(), offset, length, this);
        if (bad != null) {
            return bad;
        }
        return Mono.defer(() -> {
            ReadOp op = new ReadOp(offset, length);
            return Mono.<ByteBuf>create(sink -> {
                        ByteBuf buf = allocator.directBuffer(length, length);
                        if (!Buffers.isContiguousDirect(buf)) {
                            buf.release();
                            buf = PooledByteBufAllocator.DEFAULT.directBuffer(length, length);
                        }
                        long address = Buffers.address(buf, 0);
                        op.start(sink, buf);
                        submit(op, sink, c -> (int) lib.aioRead.invokeExact(
                                image.image, offset, (long) length, MemorySegment.ofAddress(address), c));
                    })
                    // A buffer Reactor dropped (its subscriber cancelled as it arrived) is released here, once.
                    .doOnDiscard(ByteBuf.class, b -> op.releaseBuffer());
        });
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        if (readOnly()) {
            return Mono.error(RequestChecks.readOnly("write", this));
        }
        int length = data.readableBytes();
        Mono<Void> bad = RequestChecks.checkRange(size.get(), offset, length, this);
        if (bad != null) {
            return bad;
        }
        Mono<Void> write = Mono.create(sink -> {
            ByteBuf held;
            if (Buffers.isContiguousDirect(data)) {
                held = data.retain();
            } else {
                held = PooledByteBufAllocator.DEFAULT.directBuffer(length, length);
                held.writeBytes(data, data.readerIndex(), length);
            }
            long address = Buffers.address(held, held.readerIndex());
            VoidOp op = new VoidOp(sink, "write", offset, length, held);
            submit(op, sink, c -> (int) lib.aioWrite.invokeExact(
                    image.image, offset, (long) length, MemorySegment.ofAddress(address), c, 0));
        });
        // The flush is submitted from a thread of Reactor's, not from librbd's callback thread.
        return fua ? write.then(Mono.defer(this::flush).subscribeOn(Schedulers.parallel())) : write;
    }

    @Override
    public Mono<Void> flush() {
        if (readOnly()) {
            return Mono.empty();
        }
        return Mono.create(sink -> submit(
                new VoidOp(sink, "flush", 0, 0, null), sink, c -> (int) lib.aioFlush.invokeExact(image.image, c)));
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        if (readOnly()) {
            return Mono.error(RequestChecks.readOnly("discard", this));
        }
        Mono<Void> bad = RequestChecks.checkRange(size.get(), offset, length, this);
        if (bad != null) {
            return bad;
        }
        return Mono.create(sink -> submit(new VoidOp(sink, "discard", offset, length, null), sink, c ->
                (int) lib.aioDiscard.invokeExact(image.image, offset, length, c)));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        if (readOnly()) {
            return Mono.error(RequestChecks.readOnly("write-zeroes", this));
        }
        Mono<Void> bad = RequestChecks.checkRange(size.get(), offset, length, this);
        if (bad != null) {
            return bad;
        }
        int flags = noUnmap ? Librbd.WRITE_ZEROES_THICK : 0;
        return Mono.create(sink -> submit(new VoidOp(sink, "write-zeroes", offset, length, null), sink, c ->
                (int) lib.aioWriteZeroes.invokeExact(image.image, offset, length, c, flags, 0)));
    }

    /** One {@code rbd_aio_*} call with its completion. */
    @FunctionalInterface
    private interface Submission {
        int submit(MemorySegment completion) throws Throwable;
    }

    private void submit(Op op, MonoSink<?> sink, Submission call) {
        submitting.incrementAndGet();
        try {
            if (closed.get()) {
                op.failed(new UbdIoException(Errno.ESHUTDOWN, this + " is closed"));
                return;
            }
            MemorySegment completion;
            try {
                completion = AioCompletions.create(lib, op);
            } catch (RuntimeException e) {
                op.failed(new UbdIoException(Errno.ENOMEM, op.what + " of " + this + ": " + e.getMessage()));
                return;
            }
            inFlight.incrementAndGet();
            int rc;
            try {
                rc = call.submit(completion);
            } catch (Throwable t) {
                rc = -Errno.EIO;
                LOG.warn("submitting a {} to {} failed", op.what, this, t);
            }
            if (rc < 0) {
                AioCompletions.abandon(lib, completion, op);
                op.completed(rc);
                return;
            }
            sink.onCancel(op::cancel);
        } finally {
            submitting.decrementAndGet();
        }
    }

    /** An operation's state: its Mono's sink, the buffer it holds until librbd is done. */
    private abstract class Op extends AioCompletions.Aio {
        final String what;
        final long offset;
        final long length;
        /** The buffer librbd reads or writes, held until it completed; null for none. */
        ByteBuf buf;
        /** 0 pending, 1 completed, 2 cancelled. */
        private final AtomicInteger state = new AtomicInteger();
        /** Whether {@link #buf} was released here: at most once, whichever path gets there first. */
        private final AtomicBoolean released = new AtomicBoolean();

        Op(String what, long offset, long length, ByteBuf buf) {
            this.what = what;
            this.offset = offset;
            this.length = length;
            this.buf = buf;
        }

        void cancel() {
            state.compareAndSet(0, 2);
        }

        final void releaseBuffer() {
            if (buf != null && released.compareAndSet(false, true)) {
                buf.release();
            }
        }

        /** Before submission, or when it was refused: nothing reached librbd. */
        void failed(UbdIoException e) {
            releaseBuffer();
            state.set(1);
            signalError(e);
        }

        @Override
        final void completed(long result) {
            inFlight.decrementAndGet();
            boolean mine = state.compareAndSet(0, 1);
            if (result < 0) {
                releaseBuffer();
                if (mine) {
                    signalError(new UbdIoException(
                            (int) -result,
                            what + " of " + length + " bytes at " + offset + " on " + RbdBackend.this
                                    + " failed: librbd answered " + Errno.name((int) -result)));
                }
                return;
            }
            if (mine) {
                succeeded(result);
            } else {
                releaseBuffer();
            }
        }

        abstract void succeeded(long result);

        abstract void signalError(Throwable e);
    }

    private final class ReadOp extends Op {
        private MonoSink<ByteBuf> sink;

        ReadOp(long offset, int length) {
            super("read", offset, length, null);
        }

        void start(MonoSink<ByteBuf> sink, ByteBuf buf) {
            this.sink = sink;
            this.buf = buf;
        }

        @Override
        void succeeded(long result) {
            int n = (int) Math.min(result, length);
            if (n < length) {
                // librbd reads short where the range passes the image's end (a shrink under way): zeros, as a hole.
                buf.setZero(n, (int) length - n);
            }
            buf.writerIndex((int) length);
            sink.success(buf);
        }

        @Override
        void signalError(Throwable e) {
            sink.error(e);
        }
    }

    private final class VoidOp extends Op {
        private final MonoSink<Void> sink;

        VoidOp(MonoSink<Void> sink, String what, long offset, long length, ByteBuf held) {
            super(what, offset, length, held);
            this.sink = sink;
        }

        @Override
        void succeeded(long result) {
            releaseBuffer();
            sink.success();
        }

        @Override
        void signalError(Throwable e) {
            sink.error(e);
        }
    }

    // ------------------------------------------------------------------------------------------------ size

    /** On librbd's watch thread: hand the re-read to another thread (librbd's own calls must not run here). */
    private void headerChanged() {
        refreshAgain.set(true);
        if (refreshing.compareAndSet(false, true)) {
            Schedulers.boundedElastic().schedule(this::refreshSize);
        }
    }

    private void refreshSize() {
        try {
            while (refreshAgain.getAndSet(false) && !closed.get()) {
                long now = image.size();
                long before = size.getAndSet(now);
                if (now != before) {
                    image.invalidateCache();
                    LOG.info("{} resized: {} -> {} bytes", this, before, now);
                    sizes.tryEmitNext(now);
                }
            }
        } catch (RuntimeException e) {
            LOG.warn("re-reading the size of {} failed", this, e);
        } finally {
            refreshing.set(false);
            if (refreshAgain.get() && !closed.get() && refreshing.compareAndSet(false, true)) {
                Schedulers.boundedElastic().schedule(this::refreshSize);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ close

    /**
     * Closes the image: later requests fail with {@code ESHUTDOWN}; librbd flushes its cache and completes the
     * operations in flight; then the cluster handle is shut down. Off the event loops, bounded by 60 s (a cluster that
     * does not take the flush: the Mono then fails with ETIMEDOUT, and the close finishes in the background).
     * Idempotent.
     *
     * @return a Mono that completes once the image and its cluster handle are closed
     */
    @Override
    public Mono<Void> close() {
        Mono<Void> c = closing;
        if (c != null) {
            return c;
        }
        synchronized (this) {
            if (closing == null) {
                closing = Mono.<Void>fromRunnable(this::closeNow)
                        .subscribeOn(Schedulers.boundedElastic())
                        .timeout(
                                CLOSE_BOUND,
                                Mono.error(() -> new UbdIoException(
                                        Errno.ETIMEDOUT,
                                        "closing " + this + " took longer than " + CLOSE_BOUND
                                                + ": librbd could not flush its cache to the cluster")))
                        .cache();
            }
            return closing;
        }
    }

    private void closeNow() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        while (submitting.get() > 0) {
            LockSupport.parkNanos(100_000);
        }
        RbdImage.Watch w = watch;
        if (w != null) {
            image.unwatch(w);
        }
        int rc = image.close();
        sizes.tryEmitComplete();
        if (rc < 0) {
            LOG.warn("rbd_close of {} answered {}", this, Errno.name(-rc));
        }
        LOG.info("closed {}", this);
    }

    @Override
    public String toString() {
        return "rbd(" + image.spec.imageName() + ")";
    }
}

package dev.reactorubd.targets.file;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.uring.IoUringAbi;
import dev.reactorubd.uring.LoopIo;
import dev.reactorubd.uring.Sqe;
import io.netty.buffer.ByteBuf;
import java.nio.file.Path;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.Disposable;
import reactor.core.publisher.MonoSink;

/**
 * One READ or WRITE, resubmitted until every byte is moved. Owns {@code buf}: a read's buffer goes to the
 * subscriber on success, every other buffer is released when the transfer ends. With a {@code bufIndex} there is
 * no buffer: the data moves from or to that slot of the ring's buffer table (a request's registered pages).
 */
final class FileTransfer implements LoopIo.Completion, Disposable {
    private final LoopIo io;
    private final boolean write;
    private final long offset;
    private final ByteBuf buf;
    private final long address;
    private final int length;
    private final int rwFlags;
    private final int bufIndex;
    private final MonoSink<?> sink;
    private int done;
    /** Whether the caller gave it up; read and written on the loop. */
    private boolean cancelled;
    /** Whether an operation of it is in the kernel; on the loop. */
    private boolean inKernel;
    /** Its key in the file's given-up writes while it is a given-up write in the kernel, else null. */
    private Object givenUpKey;
    /** A read's: releases its buffer once if the subscriber did not take it; null for writes. */
    private final Unclaimed unclaimed;
    /** Whether a read's buffer was handed to the sink; on the loop. */
    private boolean handed;

    /** The file transfers move data of: its descriptor, its path (for messages) and its given-up writes. */
    record OpenFile(int fd, Path path, GivenUpWrites givenUp) {}

    private final OpenFile file;

    private FileTransfer(
            OpenFile file,
            LoopIo io,
            boolean write,
            long offset,
            ByteBuf buf,
            int length,
            int rwFlags,
            int bufIndex,
            MonoSink<?> sink,
            Unclaimed unclaimed) {
        this.file = file;
        this.unclaimed = unclaimed;
        this.io = io;
        this.write = write;
        this.offset = offset;
        this.buf = buf;
        // A buffer the kernel registered is addressed from 0.
        this.address = buf != null ? Buffers.address(buf, buf.readerIndex()) : 0;
        this.length = length;
        this.rwFlags = rwFlags;
        this.bufIndex = bufIndex;
        this.sink = sink;
        sink.onCancel(this);
    }

    /** A READ of {@code length} bytes at {@code offset} into {@code buf}, which goes to {@code sink} once full. */
    static FileTransfer read(
            OpenFile file,
            LoopIo io,
            long offset,
            ByteBuf buf,
            int length,
            MonoSink<ByteBuf> sink,
            Unclaimed unclaimed) {
        return new FileTransfer(file, io, false, offset, buf, length, 0, -1, sink, unclaimed);
    }

    /** A WRITE of {@code buf}'s readable bytes at {@code offset} ({@code fua}: durable when it completes). */
    static FileTransfer write(OpenFile file, LoopIo io, long offset, ByteBuf buf, boolean fua, MonoSink<Void> sink) {
        return new FileTransfer(
                file, io, true, offset, buf, buf.readableBytes(), fua ? IoUringAbi.RWF_DSYNC : 0, -1, sink, null);
    }

    /** A READ straight into slot {@code bufIndex} of the ring's buffer table (a request's registered pages). */
    static FileTransfer readInto(OpenFile file, LoopIo io, long offset, int length, int bufIndex, MonoSink<Void> sink) {
        return new FileTransfer(file, io, false, offset, null, length, 0, bufIndex, sink, null);
    }

    /** A WRITE straight from slot {@code bufIndex} of the ring's buffer table. */
    static FileTransfer writeFrom(
            OpenFile file, LoopIo io, long offset, int length, int bufIndex, boolean fua, MonoSink<Void> sink) {
        return new FileTransfer(
                file, io, true, offset, null, length, fua ? IoUringAbi.RWF_DSYNC : 0, bufIndex, sink, null);
    }

    /** {@return the error of a failed operation: its errno, what it was, the file} */
    static UbdIoException failure(Path path, String what, int res) {
        return new UbdIoException(-res, what + " on " + path + " failed: " + Errno.describe(res));
    }

    /**
     * The caller gave the transfer up: nothing more of it is started. A write whose operation is still in the kernel
     * may land yet; later overlapping writes wait for it (see {@link GivenUpWrites}). From any thread.
     */
    @Override
    public void dispose() {
        if (io.loop().inEventLoop()) {
            giveUp();
        } else {
            try {
                io.loop().execute(this::giveUp);
            } catch (RejectedExecutionException e) {
                // The loop is gone, and its operations with it.
            }
        }
    }

    private void giveUp() {
        if (cancelled) {
            return;
        }
        cancelled = true;
        if (handed && unclaimed != null) {
            // The cancel won the race with the answer (Reactor calls it only then): the buffer was not taken.
            unclaimed.release(buf);
            return;
        }
        if (write && inKernel) {
            givenUpKey = file.givenUp().add(offset, length);
        }
    }

    void start() {
        if (cancelled) {
            release();
            return;
        }
        next();
    }

    /**
     * Starts with the request's commit linked behind the first operation, where the loop can link them: when that
     * operation moves every byte, the kernel commits the request at once. If it falls short the commit is
     * cancelled, the rest is moved as usual and the request is committed with this transfer's outcome.
     */
    void start(Runnable linkedCommit) {
        if (cancelled) {
            release();
            return;
        }
        inKernel = true;
        if (linkedCommit == null
                || bufIndex < 0
                || !io.submitLinked(
                        (write
                                        ? Sqe.writeFixed(file.fd(), offset, 0L, length, bufIndex)
                                        : Sqe.readFixed(file.fd(), offset, 0L, length, bufIndex))
                                .withRwFlags(rwFlags),
                        this,
                        linkedCommit)) {
            next();
        }
    }

    private void next() {
        inKernel = true;
        if (bufIndex >= 0) {
            io.submit(
                    (write
                                    ? Sqe.writeFixed(file.fd(), offset + done, address + done, length - done, bufIndex)
                                    : Sqe.readFixed(file.fd(), offset + done, address + done, length - done, bufIndex))
                            .withRwFlags(rwFlags),
                    this);
        } else {
            io.submit(
                    (write
                                    ? Sqe.write(file.fd(), offset + done, address + done, length - done)
                                    : Sqe.read(file.fd(), offset + done, address + done, length - done))
                            .withRwFlags(rwFlags),
                    this);
        }
    }

    private void release() {
        if (buf != null) {
            buf.release();
        }
    }

    @Override
    public void complete(int res) {
        inKernel = false;
        if (cancelled) {
            // Given up: no rest of it is moved, and writes that waited for it may go now.
            release();
            if (givenUpKey != null) {
                Object key = givenUpKey;
                givenUpKey = null;
                file.givenUp().remove(key);
            }
            return;
        }
        if (res == -Errno.EINTR) {
            next();
        } else if (res < 0) {
            release();
            sink.error(failure(
                    file.path(),
                    write ? "writing " + length + " bytes at " + offset : "reading " + length + " bytes at " + offset,
                    res));
        } else if (res == 0) {
            if (write) {
                release();
                sink.error(new UbdIoException(
                        Errno.EIO, "writing at " + (offset + done) + " on " + file.path() + " moved no byte"));
            } else if (buf == null) {
                // A request's registered pages cannot be zeroed from here: say so rather than leave stale data.
                sink.error(new UbdIoException(
                        Errno.EIO,
                        "reading at " + (offset + done) + " on " + file.path()
                                + " found the end of the file: it shrank since it was opened"));
            } else {
                // End of file (the file shrank since it was opened): the rest reads as zeros.
                buf.setZero(done, length - done);
                succeed();
            }
        } else {
            done += res;
            if (done < length) {
                next();
            } else {
                succeed();
            }
        }
    }

    @SuppressWarnings("unchecked")
    private void succeed() {
        if (write || buf == null) {
            release();
            sink.success();
        } else {
            handed = true;
            ((MonoSink<ByteBuf>) sink).success(buf.writerIndex(length));
        }
    }

    /**
     * Releases, exactly once, a read's buffer that its subscriber never got. Reactor discards a value that comes
     * after a cancel, but when the cancel is half way through ({@code Mono.create}'s state already cancelled, its
     * disposable not yet) it drops it instead, and then calls the transfer's cancel: so both the discard hook and the
     * transfer's cancel may release, and this makes sure only one does.
     */
    static final class Unclaimed {
        private final AtomicBoolean released = new AtomicBoolean();

        void release(ByteBuf buf) {
            if (released.compareAndSet(false, true)) {
                buf.release();
            }
        }
    }
}

package dev.reactorubd.io;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.sys.UblkIo;
import io.netty.buffer.ByteBuf;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;

/**
 * One block request of a queue: what the kernel asks (operation, byte offset and length, flags), the data of a
 * WRITE, and the way to answer it.
 *
 * <h2>Answering</h2>
 * Answer each request exactly once, from any thread: {@link #complete(ByteBuf)} for a READ (with exactly
 * {@link #length()} readable bytes, whose ownership passes to the queue, which releases it after copying), {@link
 * #complete()} for every other operation, or {@link #fail(int)} / {@link #fail(Throwable)}. The answer hops to the
 * queue's event loop (no hop when already there) and is committed to the kernel with the next loop turn's submit.
 * A READ answered without data or with the wrong length fails with EIO; a second answer throws
 * {@link IllegalStateException} and releases the buffer it was given.
 *
 * <h2>Zero copy</h2>
 * On a device with zero copy, a READ or WRITE may come with {@link #registeredBuffer()}: the kernel registered the
 * request's own pages in the buffer table of the queue loop's io_uring, and a backend serving in place moves the data
 * with {@code READ_FIXED}/{@code WRITE_FIXED} on that ring, then answers with {@link #complete()} (a WRITE then has no
 * {@link #data()}).
 *
 * <h2>WRITE data</h2>
 * {@link #data()} holds the bytes to write, read from the kernel into a buffer of the queue's allocator (the
 * backend's) before the request was emitted. The queue releases it once the request is answered: a backend that
 * keeps it longer (a write-back cache, an RPC in flight) calls {@code retain()} on it.
 *
 * <h2>Identity</h2>
 * A subscriber of {@link UbdQueue#requests()} gets a new object per request, and may keep it. The server's own
 * subscriber ({@code BackendBridge}), which answers each request exactly once and keeps none, lets the queue reuse one
 * object per tag instead ({@link UbdQueue#recycleRequests}), so that a request costs no allocation.
 */
public final class IoRequest {
    private final UbdQueue queue;
    private final int tag;
    // Not final: a recycled request (see Identity) is reset for its tag's next request, on the queue's loop; the
    // volatile write of answered in reset publishes them to the thread that answers.
    private IoOp op;
    private int opFlags;
    private long offset;
    private int length;
    private static final AtomicIntegerFieldUpdater<IoRequest> ANSWERED =
            AtomicIntegerFieldUpdater.newUpdater(IoRequest.class, "answered");
    private volatile int answered;
    ByteBuf data;
    ByteBuf outgoing;
    /** The slot of the loop ring's buffer table with this request's pages, or -1; set before it is emitted. */
    int bufferIndex = -1;
    /** When the fetch completed ({@link System#nanoTime()}), taken only when the queue records metrics. */
    long fetchedNanos;

    IoRequest(UbdQueue queue, int tag, int opFlags, long offset, int length) {
        this.queue = queue;
        this.tag = tag;
        this.op = IoOp.of(UblkIo.op(opFlags));
        this.opFlags = opFlags;
        this.offset = offset;
        this.length = length;
    }

    /** Makes this object its tag's next request (recycling; see Identity). On the queue's loop. */
    void reset(int opFlags, long offset, int length) {
        this.op = IoOp.of(UblkIo.op(opFlags));
        this.opFlags = opFlags;
        this.offset = offset;
        this.length = length;
        this.data = null;
        this.outgoing = null;
        this.bufferIndex = -1;
        this.fetchedNanos = 0;
        this.answered = 0;
    }

    /** {@return the queue this request came from} */
    public UbdQueue queue() {
        return queue;
    }

    /** {@return the queue's id} */
    public int queueId() {
        return queue.id();
    }

    /** {@return the tag: which of the queue's depth slots carries this request} */
    public int tag() {
        return tag;
    }

    /** {@return the operation} */
    public IoOp op() {
        return op;
    }

    /** {@return the kernel's {@code op_flags} ({@code UblkIo.F_*} bits; the low byte is the operation code)} */
    public int flags() {
        return opFlags;
    }

    /** {@return whether this WRITE has FUA (force unit access): it must be durable when answered} */
    public boolean fua() {
        return (opFlags & UblkIo.F_FUA) != 0;
    }

    /** {@return whether, for WRITE_ZEROES, the backend must keep the range allocated (not unmap it)} */
    public boolean noUnmap() {
        return (opFlags & UblkIo.F_NOUNMAP) != 0;
    }

    /** {@return the byte offset on the device} */
    public long offset() {
        return offset;
    }

    /** {@return the length in bytes (0 for FLUSH)} */
    public int length() {
        return length;
    }

    /** {@return the data of a WRITE ({@link #length()} readable bytes), or {@code null} for other operations} */
    public ByteBuf data() {
        return data;
    }

    /**
     * Where this request's pages are registered, for a backend that serves it in place: a slot of the buffer table of
     * the queue loop's io_uring, valid for {@code READ_FIXED} (a READ: the data goes there) or {@code WRITE_FIXED} (a
     * WRITE: the data is there) on that ring only, from offset 0 to {@link #length()}, until the request is answered.
     *
     * @return the slot, or -1 when the request's data is copied as usual ({@link #data()}, {@link #complete(ByteBuf)})
     */
    public int registeredBuffer() {
        return bufferIndex;
    }

    /**
     * For a request served in place, what enqueues its COMMIT_AND_FETCH on the loop's ring linked behind the one
     * operation that moves its data, so that both reach the kernel in one {@code io_uring_enter} and the commit runs
     * as soon as the data moved, with no turn of the loop in between: submit that operation with {@code
     * IOSQE_IO_LINK}, then run this at once, on the loop, in the same call ({@code LoopIo.submitLinked} does both).
     * The commit carries {@link #length()}; the kernel cancels it if the operation fails or moves fewer bytes, and the
     * request is then committed with its answer as usual. Answer the request as usual either way. Run it only for an
     * operation that moves every byte of the request, at most once, and never when the operation was not submitted.
     *
     * @return the runnable, or null when the request is not served in place or its queue cannot link commits
     */
    public Runnable linkedCommit() {
        return queue.engine().linkedCommit(this);
    }

    /** {@return whether this request was answered} */
    public boolean isAnswered() {
        return answered != 0;
    }

    /**
     * Answers a request that carries no data back: WRITE, FLUSH, DISCARD, WRITE_ZEROES, and a READ served in place
     * into its {@link #registeredBuffer()}. Any other READ fails with EIO.
     */
    public void complete() {
        answer(null, 0, null);
    }

    /**
     * Answers a READ with its data: exactly {@link #length()} readable bytes; ownership passes to the queue. For
     * other operations the buffer is released and the request completes as with {@link #complete()}.
     *
     * @param readData the data read: exactly {@link #length()} bytes, released by the queue once copied
     */
    public void complete(ByteBuf readData) {
        answer(readData, 0, null);
    }

    /**
     * Fails the request with a positive errno (EIO, ENOSPC, ...), which the reader or writer sees.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     */
    public void fail(int errno) {
        answer(null, errno <= 0 ? Errno.EIO : errno, "failed by its consumer");
    }

    /**
     * Fails the request: with the errno of a {@link UbdIoException} (or any UbdException that has one), else EIO.
     *
     * @param error the failure: its errno if it is a {@link dev.reactorubd.UbdException} with one, else EIO
     */
    public void fail(Throwable error) {
        answer(null, UbdIoException.errnoOf(error), error);
    }

    /** {@code why}: the reason of a failure (a Throwable or a String), for the queue's log. */
    private void answer(ByteBuf readData, int errno, Object why) {
        if (!ANSWERED.compareAndSet(this, 0, 1)) {
            if (readData != null) {
                readData.release();
            }
            throw new IllegalStateException("request " + this + " was already answered");
        }
        queue.engine().answer(this, readData, errno, why);
    }

    @Override
    public String toString() {
        return "IoRequest[q" + queue.id() + "/t" + tag + " " + op + " @" + offset + "+" + length + (fua() ? " FUA" : "")
                + "]";
    }
}

package dev.reactorubd.io;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdException;
import dev.reactorubd.metrics.QueueMetrics;
import dev.reactorubd.sys.UblkIo;
import io.netty.buffer.ByteBuf;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The per-tag state machine of a queue, between its transport and its {@link UbdQueue}: a tag's request is fetched,
 * its WRITE data copied in, emitted, answered, its READ data copied out, and committed, which fetches the tag's next
 * request. Linked commits ({@link LinkedCommits}), commits held while registered pages are busy ({@link
 * HeldCommits}), request objects reused per tag ({@link RequestPool}) and the rate-limited log ({@link QueueLog})
 * are kept apart; this class sequences them.
 *
 * <p>Everything here runs on the queue's event loop, except {@link #answer}, which hops there, and the counters,
 * which are written on the loop and read from any thread.
 */
final class TagEngine implements QueueEvents {
    private final UbdQueue queue;
    private final int depth;
    private final IoRequest[] inFlight;
    private final QueueMetrics metrics;
    private final boolean timed;
    private final QueueLog log;
    private QueueTransport transport;
    private RequestPool pool;
    private LinkedCommits links;
    private HeldCommits held;
    private int aborted;

    final AtomicLong completed = new AtomicLong();
    final AtomicLong failed = new AtomicLong();
    // Written on the loop only (one writer), read from any thread: plain volatile fields suffice.
    volatile long bytes;
    volatile long zeroCopied;
    volatile int inFlightCount;
    volatile long writesWaitedForMemory;

    TagEngine(UbdQueue queue, QueueMetrics metrics) {
        this.queue = queue;
        this.depth = queue.depth();
        this.inFlight = new IoRequest[depth];
        this.metrics = metrics;
        this.timed = metrics.enabled();
        this.log = new QueueLog(queue.deviceId(), queue.id());
    }

    /** Connects the transport and fetches every tag. On the loop. */
    void start(QueueTransport transport) {
        if (this.transport != null) {
            throw new IllegalStateException("queue " + queue.id() + " is already started");
        }
        this.transport = transport;
        transport.fetchAll(this);
    }

    long linkedCommitCount() {
        return links == null ? 0 : links.count();
    }

    // ---------------------------------------------------------------- linked commits

    /**
     * What enqueues {@code r}'s COMMIT_AND_FETCH linked behind the one operation that moves its data, or null when
     * that cannot be offered (the request is not served in place, or the transport cannot link). See {@link
     * IoRequest#linkedCommit()}.
     */
    Runnable linkedCommit(IoRequest r) {
        if (r.bufferIndex < 0 || transport == null || !transport.canLinkCommit()) {
            return null;
        }
        if (links == null) {
            links = new LinkedCommits(depth, this::enqueueLinkedCommit);
        }
        return links.linker(r.tag());
    }

    /** On the loop, right after the backend enqueued its operation with IOSQE_IO_LINK. */
    private void enqueueLinkedCommit(int tag) {
        IoRequest r = inFlight[tag];
        if (r == null || r.isAnswered() || !queue.loop().inEventLoop() || !links.begin(tag)) {
            return; // nothing to commit here: the link ends with a no-op (LoopIo.submitLinked)
        }
        // A READ or WRITE served in place answers its length; if the operation falls short, this is cancelled.
        transport.commitAndFetch(tag, r.length());
    }

    @Override
    public boolean onLinkedCommitCancelled(int tag) {
        int found = links == null ? LinkedCommits.NOT_LINKED : links.cancel(tag);
        if (found == LinkedCommits.CANCELLED_ANSWERED) {
            commitOnceIdle(tag, links.heldResult(tag));
        }
        return found != LinkedCommits.NOT_LINKED;
    }

    // ---------------------------------------------------------------- transport events

    @Override
    public void onFetched(int tag, int opFlags, long offset, int length, int bufferIndex) {
        if (links != null && links.fetched(tag, opFlags, offset, length, bufferIndex)) {
            return; // follows a linked commit whose request is not answered yet: taken once it is
        }
        IoRequest r = request(tag, opFlags, offset, length);
        if (timed) {
            r.fetchedNanos = System.nanoTime();
        }
        inFlight[tag] = r;
        inFlightCount++;
        if (bufferIndex >= 0 && length > 0 && queue.servesInPlace(r.op())) {
            r.bufferIndex = bufferIndex; // served in place: no buffer, no copy
            transport.holdBuffer(tag);
            zeroCopied++;
            queue.emit(r);
            return;
        }
        switch (r.op()) {
            case OTHER -> finish(tag, -Errno.EOPNOTSUPP, "operation " + UblkIo.op(opFlags) + " is not served");
            case WRITE -> {
                if (length == 0) {
                    queue.emit(r);
                    return;
                }
                copyInWrite(r, 0, 0L);
            }
            default -> queue.emit(r);
        }
    }

    private IoRequest request(int tag, int opFlags, long offset, int length) {
        if (!queue.recyclesRequests()) {
            return new IoRequest(queue, tag, opFlags, offset, length);
        }
        if (pool == null) {
            pool = new RequestPool(depth);
        }
        return pool.take(queue, tag, opFlags, offset, length);
    }

    /**
     * Takes a buffer for a WRITE's data and starts copying it in. When the allocator has no memory now (a bounded
     * direct memory whose buffers belong to requests in flight, which give them back as they are answered), the
     * request waits and tries again, backing off from 1 to 64 ms, for at most the {@link UbdQueue#writeBufferWait}:
     * failing it at once would hand the writer above an I/O error for what is only a moment's shortage.
     *
     * @param attempt earlier attempts that found no memory
     * @param deadline when to give up (System.nanoTime()), once the first attempt failed; 0 before
     */
    private void copyInWrite(IoRequest r, int attempt, long deadline) {
        int tag = r.tag();
        int length = r.length();
        ByteBuf buf;
        try {
            buf = queue.allocator().directBuffer(length, length);
        } catch (RuntimeException | OutOfMemoryError e) {
            long waitNanos = queue.writeBufferWaitNanos();
            long now = System.nanoTime();
            long end = attempt == 0 ? now + waitNanos : deadline;
            if (waitNanos > 0 && now - end >= 0) {
                finish(
                        tag,
                        -Errno.ENOMEM,
                        "no buffer for the write's data within " + Duration.ofNanos(waitNanos) + ": " + e);
                return;
            }
            if (attempt == 0) {
                writesWaitedForMemory++;
                log.memoryWait(r, e, writesWaitedForMemory);
            }
            long delayMillis = 1L << Math.min(attempt, 6);
            try {
                queue.loop()
                        .schedule(
                                () -> {
                                    if (inFlight[tag] == r) { // not aborted, nor ended with the queue, meanwhile
                                        copyInWrite(r, attempt + 1, end);
                                    }
                                },
                                delayMillis,
                                TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException gone) {
                finish(tag, -Errno.ENOMEM, "no buffer for the write's data, and the queue's loop is shutting down");
            }
            return;
        }
        if (!Buffers.isContiguousDirect(buf)) {
            buf.release();
            finish(tag, -Errno.EIO, queue.allocator() + " gave a write buffer without one native address");
            return;
        }
        r.data = buf;
        transport.copyIn(tag, buf, length);
    }

    @Override
    public void onCopiedIn(int tag, int res) {
        IoRequest r = inFlight[tag];
        if (r == null) {
            return;
        }
        if (res != r.length()) {
            finish(tag, res < 0 ? res : -Errno.EIO, "copying the write's data from the kernel moved " + res);
            return;
        }
        r.data.writerIndex(r.length());
        queue.emit(r);
    }

    @Override
    public void onCopiedOut(int tag, int res) {
        IoRequest r = inFlight[tag];
        if (r == null) {
            return;
        }
        if (res == r.length()) {
            finish(tag, res);
        } else {
            finish(tag, res < 0 ? res : -Errno.EIO, "copying the read's data to the kernel moved " + res);
        }
    }

    @Override
    public void onAborted(int tag) {
        if (links != null) {
            links.aborted(tag);
        }
        IoRequest r = inFlight[tag];
        inFlight[tag] = null;
        if (r != null) {
            inFlightCount--;
            releaseBuffers(r);
        }
        if (++aborted == depth) {
            queue.ended(null);
        }
    }

    @Override
    public void onTransportError(Throwable error) {
        for (int tag = 0; tag < depth; tag++) {
            IoRequest r = inFlight[tag];
            inFlight[tag] = null;
            if (r != null) {
                releaseBuffers(r);
            }
        }
        aborted = depth;
        inFlightCount = 0;
        queue.ended(error);
    }

    @Override
    public void onBufferIdle(int tag) {
        if (held == null) {
            return;
        }
        int result = held.release(tag);
        if (result != HeldCommits.NONE) {
            transport.commitAndFetch(tag, result);
        }
    }

    // ---------------------------------------------------------------- answers

    /** From {@link IoRequest}'s answers, on any thread. */
    void answer(IoRequest r, ByteBuf readData, int errno, Object why) {
        if (queue.loop().inEventLoop()) {
            // The common case of a backend answering on the loop: no task object on the hot path.
            onAnswer(r, readData, errno, why);
            return;
        }
        try {
            queue.scheduler().schedule(() -> onAnswer(r, readData, errno, why));
        } catch (RejectedExecutionException e) {
            // The loop is gone, and the queue with it: nobody waits for this answer any more.
            Buffers.releaseOnce(readData);
        }
    }

    private void onAnswer(IoRequest r, ByteBuf readData, int errno, Object why) {
        if (inFlight[r.tag()] != r) {
            // The queue ended meanwhile; nobody waits for this answer.
            Buffers.releaseOnce(readData);
            return;
        }
        if (errno != 0) {
            Buffers.releaseOnce(readData);
            finish(r.tag(), -errno, why);
            return;
        }
        if (r.op() != IoOp.READ || (r.bufferIndex >= 0 && readData == null)) {
            // Not a READ, or a READ its backend served in place: nothing to copy.
            Buffers.releaseOnce(readData);
            // The kernel takes the byte count as the result of a READ or WRITE, 0 from the others.
            finish(r.tag(), r.op() == IoOp.READ || r.op() == IoOp.WRITE ? r.length() : 0);
            return;
        }
        if (readData == null || readData.refCnt() == 0 || readData.readableBytes() != r.length()) {
            // A buffer released before it was handed over may already hold someone else's data: never copy it.
            String wrong = readData == null
                    ? "the read was answered without data"
                    : readData.refCnt() == 0
                            ? "the read was answered with a buffer already released"
                            : "the read was answered with " + readData.readableBytes() + " bytes";
            Buffers.releaseOnce(readData);
            finish(r.tag(), -Errno.EIO, wrong);
            return;
        }
        ByteBuf out = readData;
        if (!Buffers.isContiguousDirect(readData)) {
            // Held by the request before the copy, which may finish it (and release its buffers) before returning.
            r.outgoing = readData;
            if (transport.copyOutVectored(r.tag(), readData, r.length())) {
                return;
            }
            r.outgoing = null;
            ByteBuf gathered = null;
            try {
                gathered = queue.allocator().directBuffer(r.length(), r.length());
                gathered.writeBytes(readData, readData.readerIndex(), r.length());
            } catch (RuntimeException | OutOfMemoryError e) {
                Buffers.releaseOnce(gathered);
                finish(r.tag(), -Errno.ENOMEM, "no buffer to gather the read's data: " + e);
                return;
            } finally {
                readData.release(); // gathered, or given up: either way the backend's buffer is done with
            }
            out = gathered;
        }
        r.outgoing = out;
        transport.copyOut(r.tag(), out, r.length());
    }

    private void finish(int tag, int result) {
        finish(tag, result, null);
    }

    /** Commits {@code result} for {@code tag}; a failure is counted and logged with {@code why}. */
    private void finish(int tag, int result, Object why) {
        IoRequest r = inFlight[tag];
        inFlight[tag] = null;
        // Served in place: nothing may name the request's pages from now on, and until what still does is back from
        // the kernel, the commit (which hands the slot to the tag's next request) waits; see onBufferIdle.
        boolean slotBusy = r != null && r.bufferIndex >= 0 && !transport.retireBuffer(tag);
        if (r != null) {
            inFlightCount--;
            releaseBuffers(r);
            if (timed) {
                long latency = System.nanoTime() - r.fetchedNanos;
                if (result < 0) {
                    metrics.failed(r.op(), -result, latency);
                } else {
                    metrics.completed(r.op(), r.length(), latency);
                }
            }
        }
        if (result < 0) {
            failed.incrementAndGet();
            log.failure(r, -result, why);
        } else {
            completed.incrementAndGet();
            bytes += result; // READ and WRITE answer their byte count, the others 0
        }
        if (links != null && links.linked(tag)) {
            // A link commits behind the very operation still in flight: the kernel orders it, nothing waits. The
            // result is held in case the link is cancelled; or the link committed it already and the tag's next
            // request is waiting: take it now.
            LinkedCommits.Fetch next = links.answered(tag, result);
            if (next != null) {
                onFetched(tag, next.opFlags(), next.offset(), next.length(), next.bufferIndex());
            }
            return;
        }
        if (slotBusy) {
            hold(tag, result);
            return;
        }
        transport.commitAndFetch(tag, result);
    }

    /** Commits at once, or once no operation names the tag's registered pages any more (see finish). */
    private void commitOnceIdle(int tag, int result) {
        if (transport.retireBuffer(tag)) {
            transport.commitAndFetch(tag, result);
        } else {
            hold(tag, result);
        }
    }

    private void hold(int tag, int result) {
        if (held == null) {
            held = new HeldCommits(depth);
        }
        held.hold(tag, result);
    }

    private static void releaseBuffers(IoRequest r) {
        // Once each, even if the backend released the write data it was lent: see Buffers.releaseOnce.
        Buffers.releaseOnce(r.data);
        r.data = null;
        Buffers.releaseOnce(r.outgoing);
        r.outgoing = null;
    }

    /** For error messages from transports. */
    static UbdException fetchFailed(int deviceId, int queueId, int tag, int res) {
        return new UbdException(
                "FETCH of device " + deviceId + " queue " + queueId + " tag " + tag + " failed: " + Errno.describe(res),
                res);
    }
}

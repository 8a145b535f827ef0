package dev.reactorubd.io;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdException;
import dev.reactorubd.metrics.QueueMetrics;
import dev.reactorubd.metrics.QueueView;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.sys.UblkIo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.concurrent.EventExecutor;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Scannable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;

/**
 * One queue of a ublk device, as a {@link Flux} of {@link IoRequest}s.
 *
 * <h2>Demand</h2>
 * {@link #requests()} emits a request only when its subscriber has demand; the kernel's requests beyond demand
 * wait in the queue, at most {@link #depth()} of them, since the kernel never has more than depth requests in
 * flight on a queue: that is its own backpressure, and writers block in the kernel when every tag is taken.
 *
 * <h2>Threading</h2>
 * All of the queue's work happens on its event loop ({@link #scheduler()}): the kernel requires every FETCH and
 * COMMIT of a queue from one task. Requests are emitted on that loop, or on the thread that requests more when
 * requests were waiting. Answers ({@link IoRequest#complete()} and friends) may come from any thread.
 *
 * <h2>Errors and ending</h2>
 * The Flux completes when the device stops and every tag has been given back by the kernel. Requests still waiting
 * for demand when the subscriber cancels, and requests arriving after that, fail with EIO, so nothing waits
 * forever; a request the subscriber received is its to answer (a device cannot stop while one is unanswered). The
 * Flux has one subscriber; a second one is refused.
 *
 * <h2>Metrics</h2>
 * Each request is reported to the queue's {@link QueueMetrics} (from {@link UbdMetrics#forQueue}) as it is
 * committed, with its latency from the fetch completion to the commit; with {@link UbdMetrics#NONE} (the default)
 * no timestamp is taken. {@link #inFlightCount()} and {@link #waitingForDemand()} may be sampled from any thread.
 */
public final class UbdQueue implements QueueView {
    private static final Logger LOG = LoggerFactory.getLogger(UbdQueue.class);
    private static final long FAILURE_LOG_INTERVAL_NANOS = 1_000_000_000L;
    private final int deviceId;
    private final int id;
    private final int depth;
    private final EventExecutor loop;
    private final LoopScheduler scheduler;
    private final ByteBufAllocator allocator;
    private final IoRequest[] inFlight;
    /** The request object of each tag, when recycled; made with the first request, so an idle queue holds none. */
    private IoRequest[] recycled;

    private final Sinks.Many<IoRequest> sink;
    private final Sinks.Empty<Void> terminated = Sinks.empty();
    private final Flux<IoRequest> requests;
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final QueueMetrics metrics;
    private final boolean timed;
    // Written on the loop only (one writer), read from any thread: plain volatile fields suffice.
    private volatile long bytes;
    private volatile long zeroCopied;
    private volatile long linkedCommits;
    private volatile int inFlightCount;
    private QueueTransport transport;
    /** Whether READ and WRITE requests whose pages the kernel registered are served in place; see serveInPlace. */
    private volatile boolean readsInPlace;

    private volatile boolean writesInPlace;
    /** Whether each tag reuses one IoRequest object; see recycleRequests. */
    private volatile boolean recycle;
    /**
     * Per tag, where its linked commit stands (see {@link #linkedCommit}): {@link #LINK_NONE} and the others. Made
     * on the first link, on the loop.
     */
    private byte[] link;
    /** The result of a request answered while its linked commit was pending: committed if that commit is cancelled. */
    private int[] heldResult;
    /** A tag's next request that arrived before its previous one was answered (its linked commit went through). */
    private Fetch[] earlyFetch;
    /** What each tag's {@link #linkedCommit} runs; made once per tag. */
    private Runnable[] linkers;
    /**
     * Per tag, the result of a request answered while operations naming its registered pages were still in flight,
     * held until they are back ({@link #onBufferIdle}), else {@link #NO_WAIT}. Made on the first such answer.
     */
    private int[] bufferWait;

    private static final int NO_WAIT = Integer.MIN_VALUE;
    private int aborted;
    private long lastFailureLog;
    private int unloggedFailures;
    private volatile long writeBufferWaitNanos = DEFAULT_WRITE_BUFFER_WAIT.toNanos();
    private volatile long writesWaitedForMemory;
    private long lastMemoryWaitLog;

    /** How long a WRITE waits for a buffer for its data unless told otherwise: the bridge's default request timeout. */
    public static final Duration DEFAULT_WRITE_BUFFER_WAIT = Duration.ofSeconds(30);

    /**
     * A queue that is not connected yet: {@link #start} connects it.
     *
     * @param deviceId  the id of the device the queue belongs to
     * @param id        the queue id, from 0
     * @param depth     the tags of the queue, from 1 to 4096
     * @param loop      the event loop all of the queue's work runs on
     * @param allocator where the data of WRITE requests is put (the backend's allocator), and where READ data that
     *                  is not in one direct buffer is gathered
     */
    public UbdQueue(int deviceId, int id, int depth, EventExecutor loop, ByteBufAllocator allocator) {
        this(deviceId, id, depth, loop, allocator, UbdMetrics.NONE);
    }

    /**
     * A queue that reports its requests to {@code metrics}.
     *
     * @param deviceId  the device's id
     * @param id        the queue's id
     * @param depth     tags (requests in flight at most), from 1 to 4096
     * @param loop      the event loop the queue runs on
     * @param allocator where the data of WRITE requests is put (the backend's allocator), and where READ data that
     *                  is not in one direct buffer is gathered
     * @param metrics   where the queue reports its requests ({@link UbdMetrics#NONE}: nowhere)
     */
    public UbdQueue(
            int deviceId, int id, int depth, EventExecutor loop, ByteBufAllocator allocator, UbdMetrics metrics) {
        if (depth < 1 || depth > 4096) {
            throw new IllegalArgumentException("depth must be from 1 to 4096; was " + depth);
        }
        this.deviceId = deviceId;
        this.id = id;
        this.depth = depth;
        this.loop = Objects.requireNonNull(loop, "loop");
        this.scheduler = new LoopScheduler(loop);
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        this.inFlight = new IoRequest[depth];
        // At most depth requests ever wait (one per tag), all emitted on the loop: an array queue of that size
        // takes them without allocating, where the default linked queue allocates as it grows.
        this.sink = Sinks.many().unicast().onBackpressureBuffer(new RequestQueue(depth));
        this.requests = sink.asFlux().doOnDiscard(IoRequest.class, UbdQueue::failDiscarded);
        this.metrics = Objects.requireNonNull(
                Objects.requireNonNull(metrics, "metrics").forQueue(this), "UbdMetrics.forQueue returned null");
        this.timed = this.metrics.enabled();
    }

    private static void failDiscarded(IoRequest r) {
        if (!r.isAnswered()) {
            r.fail(Errno.EIO);
        }
    }

    /**
     * Connects the queue to the kernel (or to a virtual device) and fetches every tag.
     *
     * @param transport the kernel's side ({@link KernelQueueTransport}) or the test kit's
     */
    public void start(QueueTransport transport) {
        Objects.requireNonNull(transport, "transport");
        scheduler.schedule(() -> {
            if (this.transport != null) {
                throw new IllegalStateException("queue " + id + " is already started");
            }
            this.transport = transport;
            transport.fetchAll();
        });
    }

    /** {@return the id of the device this queue belongs to} */
    @Override
    public int deviceId() {
        return deviceId;
    }

    /** {@return the queue id, from 0} */
    @Override
    public int id() {
        return id;
    }

    /** {@return the tags of this queue: the most requests in flight at once} */
    public int depth() {
        return depth;
    }

    /** {@return the queue's event loop as a Reactor Scheduler (tasks from the loop itself run at once)} */
    public Scheduler scheduler() {
        return scheduler;
    }

    /** {@return the queue's event loop} */
    public EventExecutor loop() {
        return loop;
    }

    /** {@return the allocator WRITE data is read into} */
    public ByteBufAllocator allocator() {
        return allocator;
    }

    /**
     * The requests of this queue; see the class comment. One subscriber.
     *
     * @return the requests of this queue; see the class comment
     */
    public Flux<IoRequest> requests() {
        return requests;
    }

    /**
     * Completes when the queue has ended: the device stopped and every tag came back.
     *
     * @return a {@code Mono} that completes when the queue has ended, or signals the transport's error
     */
    public Mono<Void> onTerminated() {
        return terminated.asMono();
    }

    /** {@return requests answered with success so far} */
    public long completedCount() {
        return completed.get();
    }

    /**
     * Requests answered with an error so far.
     *
     * @return the count, readable from any thread
     */
    public long failedCount() {
        return failed.get();
    }

    /**
     * Bytes moved by successful READ and WRITE requests so far.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long bytesCount() {
        return bytes;
    }

    /**
     * READ and WRITE requests handed to the subscriber in place so far: with their pages registered by the kernel
     * ({@link IoRequest#registeredBuffer()}), moved with no copy.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long zeroCopyCount() {
        return zeroCopied;
    }

    /**
     * Requests served in place whose commit the kernel ran linked behind the backend's operation ({@link
     * IoRequest#linkedCommit()}): links enqueued, less those cancelled because the operation fell short.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long linkedCommitCount() {
        return linkedCommits;
    }

    /**
     * Requests the kernel handed to this queue that are not answered yet (at most {@link #depth()}).
     *
     * @return the count at the time of the call, readable from any thread
     */
    @Override
    public int inFlightCount() {
        return inFlightCount;
    }

    /**
     * Requests waiting for the subscriber's demand now.
     *
     * @return a sample, readable from any thread
     */
    @Override
    public int waitingForDemand() {
        Integer n = Scannable.from(sink).scan(Scannable.Attr.BUFFERED);
        return n == null ? 0 : n;
    }

    /**
     * Whether requests whose pages the kernel registered in the loop ring's buffer table (zero copy, see {@link
     * IoRequest#registeredBuffer()}) reach the subscriber as they are, to be served in place; otherwise (the default)
     * their data is copied as for any request. The server sets it, before the device starts, when the backend that
     * serves this queue serves requests in place.
     *
     * @param inPlace whether to hand registered requests over in place
     */
    public void serveInPlace(boolean inPlace) {
        serveInPlace(inPlace, inPlace);
    }

    /**
     * As {@link #serveInPlace(boolean)}, for READ and WRITE apart: a backend may serve one in place and have the
     * other's data copied (a network backend sends a WRITE's pages straight to its socket, while a READ's reply
     * arrives in a buffer of its own).
     *
     * @param reads whether READ requests with registered pages are handed over in place
     * @param writes whether WRITE requests with registered pages are handed over in place
     */
    public void serveInPlace(boolean reads, boolean writes) {
        this.readsInPlace = reads;
        this.writesInPlace = writes;
    }

    /**
     * Whether each tag reuses one {@link IoRequest} object for all its requests, so that a request allocates
     * nothing; otherwise (the default) every request is a new object. Only for a subscriber that answers each
     * request exactly once and keeps no reference to it once answered, as the server's own does: a recycled object
     * answered twice would answer its tag's next request. Set before the device starts.
     *
     * @param recycle whether to reuse one request object per tag
     */
    public void recycleRequests(boolean recycle) {
        this.recycle = recycle;
    }

    /**
     * How long a WRITE waits for a buffer for its data when the allocator has no memory now, trying again as requests
     * in flight give theirs back, before it fails with ENOMEM; {@link Duration#ZERO} waits as long as it takes. The
     * server sets it to its request timeout. Default {@link #DEFAULT_WRITE_BUFFER_WAIT}.
     *
     * @param wait the bound, not negative
     * @throws IllegalArgumentException for a negative wait
     */
    public void writeBufferWait(Duration wait) {
        if (wait.isNegative()) {
            throw new IllegalArgumentException("the write buffer wait must not be negative; was " + wait);
        }
        this.writeBufferWaitNanos = wait.toNanos();
    }

    /**
     * WRITE requests that found no memory for their data at first and waited for it (see {@link #writeBufferWait}).
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long writesWaitedForMemoryCount() {
        return writesWaitedForMemory;
    }

    /**
     * The queue's metrics recorder.
     *
     * @return the recorder ({@link UbdMetrics#NONE}'s when metrics are off)
     */
    public QueueMetrics metrics() {
        return metrics;
    }

    // ---------------------------------------------------------------- linked commits (on the loop)

    /** No linked commit. */
    private static final byte LINK_NONE = 0;
    /** The commit is linked behind the backend's operation; neither the answer nor the commit's fate is known. */
    private static final byte LINK_PENDING = 1;
    /** The request was answered (its result held) while its linked commit was pending. */
    private static final byte LINK_ANSWERED = 2;
    /** The linked commit went through and the tag's next request arrived before the answer (stashed meanwhile). */
    private static final byte LINK_FETCHED_EARLY = 3;

    /** A request of a tag that arrived before the tag's previous request was answered. */
    private record Fetch(int opFlags, long offset, int length, int bufferIndex) {}

    /**
     * What enqueues {@code r}'s COMMIT_AND_FETCH linked behind the one operation that moves its data, or null when
     * that cannot be offered (the request is not served in place, or the transport cannot link). See {@link
     * IoRequest#linkedCommit()}.
     */
    Runnable linkedCommit(IoRequest r) {
        if (r.bufferIndex < 0 || transport == null || !transport.canLinkCommit()) {
            return null;
        }
        if (linkers == null) {
            link = new byte[depth];
            heldResult = new int[depth];
            earlyFetch = new Fetch[depth];
            linkers = new Runnable[depth];
        }
        Runnable l = linkers[r.tag()];
        if (l == null) {
            int tag = r.tag();
            l = linkers[tag] = () -> enqueueLinkedCommit(tag);
        }
        return l;
    }

    /** On the loop, right after the backend enqueued its operation with IOSQE_IO_LINK. */
    private void enqueueLinkedCommit(int tag) {
        IoRequest r = inFlight[tag];
        if (r == null || r.isAnswered() || link[tag] != LINK_NONE || !loop.inEventLoop()) {
            return; // nothing to commit here: the link ends with a no-op (LoopIo.submitLinked)
        }
        link[tag] = LINK_PENDING;
        linkedCommits++;
        // A READ or WRITE served in place answers its length; if the operation falls short, this is cancelled.
        transport.commitAndFetch(tag, r.length());
    }

    /**
     * The linked commit of {@code tag} was cancelled (the operation it followed failed or fell short, and the
     * backend goes on or fails the request): the answer is committed the usual way.
     *
     * @param tag the request tag
     * @return whether {@code tag} had a linked commit pending; otherwise the cancellation is not this queue's doing
     */
    public boolean onLinkedCommitCancelled(int tag) {
        if (link == null || (link[tag] != LINK_PENDING && link[tag] != LINK_ANSWERED)) {
            return false;
        }
        boolean answered = link[tag] == LINK_ANSWERED;
        link[tag] = LINK_NONE;
        linkedCommits--;
        if (answered) {
            commitOnceIdle(tag, heldResult[tag]);
        }
        return true;
    }

    /**
     * Whether the request just fetched for {@code tag} follows a linked commit, and so cannot be taken yet: its
     * previous request is still waiting for its answer (stashed until then). Clears the tag's link otherwise.
     */
    private boolean fetchedWhileLinked(int tag, int opFlags, long offset, int length, int bufferIndex) {
        if (link == null || link[tag] == LINK_NONE) {
            return false;
        }
        if (link[tag] == LINK_PENDING) {
            link[tag] = LINK_FETCHED_EARLY;
            earlyFetch[tag] = new Fetch(opFlags, offset, length, bufferIndex);
            return true;
        }
        link[tag] = LINK_NONE; // answered, and committed by the link
        return false;
    }

    // ---------------------------------------------------------------- transport callbacks (on the loop)

    /**
     * The kernel put a request in {@code tag}'s descriptor.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param opFlags the descriptor's {@code op_flags}
     * @param offset the byte offset on the device
     * @param length the length in bytes
     */
    public void onFetched(int tag, int opFlags, long offset, int length) {
        onFetched(tag, opFlags, offset, length, -1);
    }

    /**
     * The kernel put a request in {@code tag}'s descriptor, and perhaps registered its pages in the loop ring's buffer
     * table. A READ or WRITE whose pages are registered skips the copy when the queue {@link #serveInPlace serves in
     * place}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param opFlags the descriptor's {@code op_flags}
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages, or -1 for none
     */
    public void onFetched(int tag, int opFlags, long offset, int length, int bufferIndex) {
        if (fetchedWhileLinked(tag, opFlags, offset, length, bufferIndex)) {
            return;
        }
        IoRequest r = request(tag, opFlags, offset, length);
        if (timed) {
            r.fetchedNanos = System.nanoTime();
        }
        inFlight[tag] = r;
        inFlightCount++;
        if (bufferIndex >= 0
                && length > 0
                && ((r.op() == IoOp.READ && readsInPlace) || (r.op() == IoOp.WRITE && writesInPlace))) {
            r.bufferIndex = bufferIndex; // served in place: no buffer, no copy
            transport.holdBuffer(tag);
            zeroCopied++;
            emit(r);
            return;
        }
        switch (r.op()) {
            case OTHER -> finish(tag, -Errno.EOPNOTSUPP, "operation " + UblkIo.op(opFlags) + " is not served");
            case WRITE -> {
                if (length == 0) {
                    emit(r);
                    return;
                }
                copyInWrite(r, 0, 0L);
            }
            default -> emit(r);
        }
    }

    /**
     * Takes a buffer for a WRITE's data and starts copying it in. When the allocator has no memory now (a bounded
     * direct memory whose buffers belong to requests in flight, which give them back as they are answered), the
     * request waits and tries again, backing off from 1 to 64 ms, for at most the {@link #writeBufferWait}: failing
     * it at once would hand the writer above an I/O error for what is only a moment's shortage.
     *
     * @param attempt earlier attempts that found no memory
     * @param deadline when to give up (System.nanoTime()), once the first attempt failed; 0 before
     */
    private void copyInWrite(IoRequest r, int attempt, long deadline) {
        int tag = r.tag();
        int length = r.length();
        ByteBuf buf;
        try {
            buf = allocator.directBuffer(length, length);
        } catch (RuntimeException | OutOfMemoryError e) {
            long now = System.nanoTime();
            long end = attempt == 0 ? now + writeBufferWaitNanos : deadline;
            if (writeBufferWaitNanos > 0 && now - end >= 0) {
                finish(
                        tag,
                        -Errno.ENOMEM,
                        "no buffer for the write's data within " + Duration.ofNanos(writeBufferWaitNanos) + ": " + e);
                return;
            }
            if (attempt == 0) {
                writesWaitedForMemory++;
                logMemoryWait(r, e);
            }
            long delayMillis = 1L << Math.min(attempt, 6);
            try {
                loop.schedule(
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
            finish(tag, -Errno.EIO, allocator + " gave a write buffer without one native address");
            return;
        }
        r.data = buf;
        transport.copyIn(tag, buf, length);
    }

    /** One WARN line a second at most per queue: writes waiting for memory say the direct memory is too small. */
    private void logMemoryWait(IoRequest r, Throwable e) {
        long now = System.nanoTime();
        if (lastMemoryWaitLog != 0 && now - lastMemoryWaitLog < FAILURE_LOG_INTERVAL_NANOS) {
            return;
        }
        lastMemoryWaitLog = now;
        LOG.warn(
                "device {} queue {}: {} waits for a buffer for its data ({}); {} writes of this queue waited so far."
                        + " Direct memory should hold queues x depth x the largest request (docs/memory-pressure.md)",
                deviceId,
                id,
                r,
                e.toString(),
                writesWaitedForMemory);
    }

    private IoRequest request(int tag, int opFlags, long offset, int length) {
        if (!recycle) {
            return new IoRequest(this, tag, opFlags, offset, length);
        }
        if (recycled == null) {
            recycled = new IoRequest[depth];
        }
        IoRequest r = recycled[tag];
        if (r == null) {
            r = recycled[tag] = new IoRequest(this, tag, opFlags, offset, length);
        } else {
            r.reset(opFlags, offset, length);
        }
        return r;
    }

    /**
     * The data of the WRITE in {@code tag} was copied in: {@code res} bytes, or {@code -errno}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param res the result: a byte count, or {@code -errno}
     */
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
        emit(r);
    }

    /**
     * The data of the READ in {@code tag} was copied out: {@code res} bytes, or {@code -errno}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param res the result: a byte count, or {@code -errno}
     */
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

    /**
     * The kernel gave {@code tag} back for good (the device is stopping).
     *
     * @param tag the request tag, from 0 to depth - 1
     */
    public void onAborted(int tag) {
        if (link != null) {
            link[tag] = LINK_NONE;
        }
        IoRequest r = inFlight[tag];
        inFlight[tag] = null;
        if (r != null) {
            inFlightCount--;
            releaseBuffers(r);
        }
        if (++aborted == depth) {
            sink.tryEmitComplete();
            terminated.tryEmitEmpty();
        }
    }

    /**
     * The transport failed for good: the Flux signals the error, the queue ends.
     *
     * @param error the error
     */
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
        sink.tryEmitError(error);
        terminated.tryEmitError(error);
    }

    // ---------------------------------------------------------------- answers

    void answer(IoRequest r, ByteBuf readData, int errno, Object why) {
        if (loop.inEventLoop()) {
            // The common case of a backend answering on the loop: no task object on the hot path.
            onAnswer(r, readData, errno, why);
            return;
        }
        try {
            scheduler.schedule(() -> onAnswer(r, readData, errno, why));
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
                gathered = allocator.directBuffer(r.length(), r.length());
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

    private void emit(IoRequest r) {
        Sinks.EmitResult result = sink.tryEmitNext(r);
        if (result.isFailure() && !r.isAnswered()) {
            // No subscriber any more (cancelled), or the queue is ending: nobody will answer it.
            r.fail(Errno.EIO);
        }
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
            logFailure(r, -result, why);
        } else {
            completed.incrementAndGet();
            bytes += result; // READ and WRITE answer their byte count, the others 0
        }
        if (link != null && link[tag] != LINK_NONE) {
            // A pending link commits behind the very operation still in flight: the kernel orders it, nothing waits.
            if (link[tag] == LINK_PENDING) {
                // The commit is on its way behind the backend's operation; should it be cancelled, this result goes.
                link[tag] = LINK_ANSWERED;
                heldResult[tag] = result;
            } else if (link[tag] == LINK_FETCHED_EARLY) {
                // The link committed it, and the tag's next request is waiting: take it now.
                link[tag] = LINK_NONE;
                Fetch f = earlyFetch[tag];
                earlyFetch[tag] = null;
                onFetched(tag, f.opFlags(), f.offset(), f.length(), f.bufferIndex());
            }
            return;
        }
        if (slotBusy) {
            holdCommit(tag, result);
            return;
        }
        transport.commitAndFetch(tag, result);
    }

    /** Commits at once, or once no operation names the tag's registered pages any more (see finish). */
    private void commitOnceIdle(int tag, int result) {
        if (transport.retireBuffer(tag)) {
            transport.commitAndFetch(tag, result);
        } else {
            holdCommit(tag, result);
        }
    }

    private void holdCommit(int tag, int result) {
        if (bufferWait == null) {
            bufferWait = new int[depth];
            Arrays.fill(bufferWait, NO_WAIT);
        }
        bufferWait[tag] = result;
    }

    /**
     * The last operation naming the registered pages of {@code tag}'s answered request is back: its held commit goes.
     * On the loop.
     *
     * @param tag the request tag, from 0 to depth - 1
     */
    public void onBufferIdle(int tag) {
        if (bufferWait == null || bufferWait[tag] == NO_WAIT) {
            return;
        }
        int result = bufferWait[tag];
        bufferWait[tag] = NO_WAIT;
        transport.commitAndFetch(tag, result);
    }

    /**
     * A failed request leaves a trace: a WARN line with the request and the reason, at most one a second per queue
     * (the lines in between are counted and the count is logged with the next one), so that a backend failing every
     * request cannot flood the log. On the loop.
     */
    private void logFailure(IoRequest r, int errno, Object why) {
        long now = System.nanoTime();
        if (lastFailureLog != 0 && now - lastFailureLog < FAILURE_LOG_INTERVAL_NANOS) {
            unloggedFailures++;
            return;
        }
        String reason = why instanceof Throwable t
                ? String.valueOf(t.getMessage() != null ? t.getMessage() : t)
                : why != null ? why.toString() : "failed";
        LOG.warn(
                "device {} queue {}: {} failed with {}: {}{}",
                deviceId,
                id,
                r != null ? r : "request",
                Errno.describe(-errno),
                reason,
                unloggedFailures > 0 ? " (" + unloggedFailures + " more failures not logged in the last second)" : "");
        lastFailureLog = now;
        unloggedFailures = 0;
    }

    private static void releaseBuffers(IoRequest r) {
        // Once each, even if the backend released the write data it was lent: see Buffers.releaseOnce.
        Buffers.releaseOnce(r.data);
        r.data = null;
        Buffers.releaseOnce(r.outgoing);
        r.outgoing = null;
    }

    @Override
    public String toString() {
        return "UbdQueue[dev " + deviceId + " q" + id + ", depth " + depth + "]";
    }

    /** For error messages from transports. */
    static UbdException fetchFailed(int deviceId, int queueId, int tag, int res) {
        return new UbdException(
                "FETCH of device " + deviceId + " queue " + queueId + " tag " + tag + " failed: " + Errno.describe(res),
                res);
    }
}

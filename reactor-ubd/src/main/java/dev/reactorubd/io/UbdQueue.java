package dev.reactorubd.io;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.metrics.QueueMetrics;
import dev.reactorubd.metrics.QueueView;
import dev.reactorubd.metrics.UbdMetrics;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.concurrent.EventExecutor;
import java.time.Duration;
import java.util.Objects;
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
    private final int deviceId;
    private final int id;
    private final int depth;
    private final EventExecutor loop;
    private final LoopScheduler scheduler;
    private final ByteBufAllocator allocator;
    private final Sinks.Many<IoRequest> sink;
    private final Sinks.Empty<Void> terminated = Sinks.empty();
    private final Flux<IoRequest> requests;
    private final QueueMetrics metrics;
    /** Where each tag's request stands, between the transport and this queue's Flux. */
    private final TagEngine engine;
    /** Whether READ and WRITE requests whose pages the kernel registered are served in place; see serveInPlace. */
    private volatile boolean readsInPlace;

    private volatile boolean writesInPlace;
    /** Whether each tag reuses one IoRequest object; see recycleRequests. */
    private volatile boolean recycle;

    private volatile long writeBufferWaitNanos = DEFAULT_WRITE_BUFFER_WAIT.toNanos();

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
        // At most depth requests ever wait (one per tag), all emitted on the loop: an array queue of that size
        // takes them without allocating, where the default linked queue allocates as it grows.
        this.sink = Sinks.many().unicast().onBackpressureBuffer(new RequestQueue(depth));
        this.requests = sink.asFlux().doOnDiscard(IoRequest.class, UbdQueue::failDiscarded);
        this.metrics = Objects.requireNonNull(
                Objects.requireNonNull(metrics, "metrics").forQueue(this), "UbdMetrics.forQueue returned null");
        this.engine = new TagEngine(this, this.metrics);
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
        scheduler.schedule(() -> engine.start(transport));
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
        return engine.completed.get();
    }

    /**
     * Requests answered with an error so far.
     *
     * @return the count, readable from any thread
     */
    public long failedCount() {
        return engine.failed.get();
    }

    /**
     * Bytes moved by successful READ and WRITE requests so far.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long bytesCount() {
        return engine.bytes;
    }

    /**
     * READ and WRITE requests handed to the subscriber in place so far: with their pages registered by the kernel
     * ({@link IoRequest#registeredBuffer()}), moved with no copy.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long zeroCopyCount() {
        return engine.zeroCopied;
    }

    /**
     * Requests served in place whose commit the kernel ran linked behind the backend's operation ({@link
     * IoRequest#linkedCommit()}): links enqueued, less those cancelled because the operation fell short.
     *
     * @return the count, readable from any thread (updated on the queue's loop)
     */
    public long linkedCommitCount() {
        return engine.linkedCommitCount();
    }

    /**
     * Requests the kernel handed to this queue that are not answered yet (at most {@link #depth()}).
     *
     * @return the count at the time of the call, readable from any thread
     */
    @Override
    public int inFlightCount() {
        TagEngine e = engine; // null while the constructor asks the metrics for a recorder, which may sample this
        return e == null ? 0 : e.inFlightCount;
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
        return engine.writesWaitedForMemory;
    }

    /**
     * The queue's metrics recorder.
     *
     * @return the recorder ({@link UbdMetrics#NONE}'s when metrics are off)
     */
    public QueueMetrics metrics() {
        return metrics;
    }

    // ---------------------------------------------------------------- for the tag engine and requests

    /** The tag engine: what transports report to ({@link QueueEvents}) and what requests answer through. */
    TagEngine engine() {
        return engine;
    }

    /** Emits {@code r} to the subscriber; a request nobody can take any more fails with EIO. On the loop. */
    void emit(IoRequest r) {
        Sinks.EmitResult result = sink.tryEmitNext(r);
        if (result.isFailure() && !r.isAnswered()) {
            // No subscriber any more (cancelled), or the queue is ending: nobody will answer it.
            r.fail(Errno.EIO);
        }
    }

    /** Every tag is back ({@code error} null) or the transport failed: the Flux ends. On the loop. */
    void ended(Throwable error) {
        if (error == null) {
            sink.tryEmitComplete();
            terminated.tryEmitEmpty();
        } else {
            sink.tryEmitError(error);
            terminated.tryEmitError(error);
        }
    }

    /** {@return whether a request of {@code op} whose pages the kernel registered is handed over in place} */
    boolean servesInPlace(IoOp op) {
        return (op == IoOp.READ && readsInPlace) || (op == IoOp.WRITE && writesInPlace);
    }

    boolean recyclesRequests() {
        return recycle;
    }

    long writeBufferWaitNanos() {
        return writeBufferWaitNanos;
    }

    @Override
    public String toString() {
        return "UbdQueue[dev " + deviceId + " q" + id + ", depth " + depth + "]";
    }
}

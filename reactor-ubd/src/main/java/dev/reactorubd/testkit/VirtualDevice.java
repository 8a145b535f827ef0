package dev.reactorubd.testkit;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.io.QueueEvents;
import dev.reactorubd.io.QueueTransport;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.server.BackendBridge;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.sys.UblkIo;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.EventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.local.LocalIoHandler;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;

/**
 * A ublk device without a kernel: it submits block requests to real {@link UbdQueue}s the way the driver does (a
 * tag per request, at most depth in flight per queue, the rest waiting; WRITE data copied in, READ data copied out;
 * results committed per tag) and reports each result to the caller.
 *
 * <pre>{@code
 * try (VirtualDevice dev = VirtualDevice.serve(new MyBackend(), 1, 32)) {
 *     StepVerifier.create(dev.write(0, 0, data).then(dev.read(0, 0, 4096)))
 *             .assertNext(buf -> ...).verifyComplete();
 * }
 * }</pre>
 *
 * <p>Use {@link #create} and subscribe to {@link #queue(int)}{@code .requests()} to test a queue consumer, or
 * {@link #serve} to test a {@link BlockBackend} through the same bridge the server uses. Each queue runs on its own
 * Netty event loop, which BlockHound (where installed) treats as non-blocking, as in production.
 *
 * <p>Results: {@link #read} signals the data (the caller releases it); the others complete empty. A request the
 * queue failed signals {@link UbdIoException} with its errno; a READ answered with no bytes fails with EIO, as the
 * kernel does.
 *
 * <p>Metrics: {@link #serve(BlockBackend, int, int, io.micrometer.core.instrument.MeterRegistry)} records the queues'
 * Micrometer meters as a server does (device tag -1); any {@link UbdMetrics} can be given to {@link #create(int, int,
 * ByteBufAllocator, UbdMetrics)}. {@link #close()} removes the meters.
 */
public final class VirtualDevice implements AutoCloseable {
    private static final AtomicInteger DEVICES = new AtomicInteger();
    private final List<UbdQueue> queues = new ArrayList<>();
    private final List<VirtualTransport> transports = new ArrayList<>();
    private final MultiThreadIoEventLoopGroup group;
    private final List<Disposable> bridges = new ArrayList<>();
    private final ByteBufAllocator allocator;

    private VirtualDevice(int queueCount, int depth, ByteBufAllocator allocator, UbdMetrics metrics) {
        if (queueCount < 1 || queueCount > 64) {
            throw new IllegalArgumentException("queues must be from 1 to 64; was " + queueCount);
        }
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        // io_uring loops where the kernel has io_uring, so that backends which submit their own io_uring operations
        // (the file target) run as they do on a real device; plain loops elsewhere.
        this.group = new MultiThreadIoEventLoopGroup(
                queueCount,
                new DefaultThreadFactory("ubd-vdev-" + DEVICES.incrementAndGet(), true),
                IoUring.isAvailable() ? IoUringIoHandler.newFactory() : LocalIoHandler.newFactory());
        for (int q = 0; q < queueCount; q++) {
            EventLoop loop = (EventLoop) group.next();
            UbdQueue queue = new UbdQueue(-1, q, depth, loop, allocator, metrics);
            VirtualTransport t = new VirtualTransport(queue);
            queues.add(queue);
            transports.add(t);
        }
    }

    /**
     * A device whose queues are left to the caller to consume; WRITE data lands in Netty's pooled allocator.
     *
     * @param queues the number of queues
     * @param depth the tags per queue (requests in flight at most)
     * @return a device whose queues are left to the caller to consume; WRITE data lands in Netty's pooled allocator
     */
    public static VirtualDevice create(int queues, int depth) {
        return create(queues, depth, PooledByteBufAllocator.DEFAULT);
    }

    /**
     * A device whose queues are left to the caller to consume. The queues are started at once: requests wait
     * until a subscriber asks for them.
     *
     * @param queues the number of queues
     * @param depth the tags per queue (requests in flight at most)
     * @param allocator where WRITE data is read into, as a backend's allocator would be
     * @return a device whose queues are left to the caller to consume
     */
    public static VirtualDevice create(int queues, int depth, ByteBufAllocator allocator) {
        return create(queues, depth, allocator, UbdMetrics.NONE);
    }

    /**
     * As {@link #create(int, int, ByteBufAllocator)}, with the queues reporting to {@code metrics}.
     *
     * @param queues how many queues
     * @param depth the tags per queue
     * @param allocator where WRITE data is read into
     * @param metrics where the queues report their requests
     * @return a device whose queues are left to the caller to consume
     */
    public static VirtualDevice create(int queues, int depth, ByteBufAllocator allocator, UbdMetrics metrics) {
        VirtualDevice d = new VirtualDevice(queues, depth, allocator, Objects.requireNonNull(metrics, "metrics"));
        for (int q = 0; q < queues; q++) {
            d.queues.get(q).start(d.transports.get(q));
        }
        return d;
    }

    /**
     * A device whose queues are served by {@code backend}, through the server's own bridge: the backend is bound to
     * each queue ({@link BlockBackend#bind}) as the server does. Waits at most 30 s for the binds; their error is
     * thrown.
     *
     * @param backend the backend that answers the requests
     * @param queues the number of queues
     * @param depth the tags per queue (requests in flight at most)
     * @return a device whose queues are served by {@code backend}, through the server's own bridge: the backend is
     *         bound to each queue ({@link BlockBackend#bind}) as the server does
     */
    public static VirtualDevice serve(BlockBackend backend, int queues, int depth) {
        return serve(backend, queues, depth, BackendBridge.DEFAULT_REQUEST_TIMEOUT, UbdMetrics.NONE);
    }

    /**
     * Like {@link #serve(BlockBackend, int, int)}, failing requests the backend leaves unanswered for that long.
     *
     * @param backend the backend under test
     * @param queues how many queues
     * @param depth tags per queue
     * @param requestTimeout how long a request may wait for the backend's answer (ETIMEDOUT after it)
     * @return the device, serving
     */
    public static VirtualDevice serve(BlockBackend backend, int queues, int depth, Duration requestTimeout) {
        return serve(backend, queues, depth, requestTimeout, UbdMetrics.NONE);
    }

    /**
     * As {@link #serve(BlockBackend, int, int)}, recording each queue's Micrometer meters into {@code registry} (see
     * {@link MicrometerMetrics}); needs micrometer-core on the class path.
     *
     * @param backend the backend under test
     * @param queues how many queues
     * @param depth tags per queue
     * @param registry where the meters go
     * @return the device, serving
     */
    public static VirtualDevice serve(BlockBackend backend, int queues, int depth, MeterRegistry registry) {
        return serve(backend, queues, depth, BackendBridge.DEFAULT_REQUEST_TIMEOUT, MicrometerMetrics.of(registry));
    }

    /**
     * As {@link #serve(BlockBackend, int, int)}, with the queues reporting to {@code metrics} and a request timeout.
     *
     * @param backend the backend under test
     * @param queues how many queues
     * @param depth tags per queue
     * @param requestTimeout how long a request may wait for the backend's answer (ETIMEDOUT after it)
     * @param metrics where the queues report their requests
     * @return the device, serving
     */
    public static VirtualDevice serve(
            BlockBackend backend, int queues, int depth, Duration requestTimeout, UbdMetrics metrics) {
        VirtualDevice d = create(queues, depth, backend.allocator(), metrics);
        try {
            d.bridges.addAll(BackendBridge.attachAll(d.queues, backend, requestTimeout)
                    .collectList()
                    .block(Duration.ofSeconds(30)));
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
        return d;
    }

    /** {@return whether queues run on io_uring event loops (the host kernel has io_uring), as on a real device} */
    public boolean onIoUring() {
        return group.isIoType(IoUringIoHandler.class);
    }

    /**
     * The queues of this device, in order.
     *
     * @return the queues
     */
    public List<UbdQueue> queues() {
        return List.copyOf(queues);
    }

    /**
     * One of the queues.
     *
     * @param id the queue id, from 0
     * @return the queue
     */
    public UbdQueue queue(int id) {
        return queues.get(id);
    }

    /**
     * Reads {@code length} bytes at {@code offset} through queue {@code q}; the caller releases the buffer.
     *
     * @param q the queue index, from 0
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @return a Mono of the data read (the caller releases it), or an error: a {@link dev.reactorubd.UbdIoException}
     *         with the request's errno
     */
    public Mono<ByteBuf> read(int q, long offset, int length) {
        return submit(q, IoOp.READ, 0, offset, length, null).map(r -> r.data);
    }

    /**
     * Writes {@code data}'s readable bytes at {@code offset} through queue {@code q}; the caller keeps the buffer.
     *
     * @param q the queue index, from 0
     * @param offset the byte offset on the device
     * @param data the bytes to write (its readable bytes)
     * @return a Mono that completes when the write was answered, or a {@link dev.reactorubd.UbdIoException} with its
     *         errno
     */
    public Mono<Void> write(int q, long offset, ByteBuf data) {
        return write(q, offset, data, false);
    }

    /**
     * Writes {@code data} at {@code offset} through queue {@code q}, with or without FUA.
     *
     * @param q the queue index, from 0
     * @param offset the byte offset on the device
     * @param data the bytes to write (its readable bytes)
     * @param fua force unit access: durable when answered
     * @return a Mono that completes when the write was answered, or a {@link dev.reactorubd.UbdIoException} with its
     *         errno
     */
    public Mono<Void> write(int q, long offset, ByteBuf data, boolean fua) {
        return submit(q, IoOp.WRITE, fua ? UblkIo.F_FUA : 0, offset, data.readableBytes(), data)
                .then();
    }

    /**
     * Sends a FLUSH through queue {@code q}.
     *
     * @param q the queue index, from 0
     * @return a Mono that completes when the flush was answered, or a {@link dev.reactorubd.UbdIoException} with its
     *         errno
     */
    public Mono<Void> flush(int q) {
        return submit(q, IoOp.FLUSH, 0, 0, 0, null).then();
    }

    /**
     * Sends a DISCARD of {@code length} bytes at {@code offset} through queue {@code q}.
     *
     * @param q the queue index, from 0
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @return a Mono that completes when the discard was answered, or a {@link dev.reactorubd.UbdIoException} with its
     *         errno
     */
    public Mono<Void> discard(int q, long offset, int length) {
        return submit(q, IoOp.DISCARD, 0, offset, length, null).then();
    }

    /**
     * Sends a WRITE_ZEROES of {@code length} bytes at {@code offset} through queue {@code q}.
     *
     * @param q the queue index, from 0
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @return a Mono that completes when the request was answered, or a {@link dev.reactorubd.UbdIoException} with its
     *         errno
     */
    public Mono<Void> writeZeroes(int q, long offset, int length) {
        return submit(q, IoOp.WRITE_ZEROES, 0, offset, length, null).then();
    }

    /**
     * Submits a request with a raw operation code (a zoned one, say) and flags.
     *
     * @param q the queue index, from 0
     * @param opCode the kernel's operation code ({@code UblkIo.OP_*})
     * @param flags the request flags ({@code UblkIo.F_*})
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @return the committed result: bytes, or 0 (the data a READ returned is released here)
     */
    public Mono<Integer> submitRaw(int q, int opCode, int flags, long offset, int length) {
        return submit(q, opCode | flags, offset, length, null).map(d -> {
            // Only the count is handed on: the data of a READ, which this method's caller never sees, ends here.
            if (d.data != null) {
                d.data.release();
            }
            return d.result;
        });
    }

    private Mono<Done> submit(int q, IoOp op, int flags, long offset, int length, ByteBuf data) {
        return submit(q, op.code() | flags, offset, length, data);
    }

    /** Submits a request, per subscription; a WRITE's {@code data} (or null) is retained for it. */
    private Mono<Done> submit(int q, int opFlags, long offset, int length, ByteBuf data) {
        return Mono.create((MonoSink<Done> sink) -> transports
                        .get(q)
                        .submit(new VirtualRequest(
                                opFlags, offset, length, data == null ? null : data.retainedSlice(), sink)))
                // A READ whose caller went away meanwhile (a timeout, a cancelled merge) still owns its data.
                .doOnDiscard(Done.class, d -> {
                    if (d.data != null) {
                        d.data.release();
                    }
                });
    }

    /**
     * Keeps every free tag of queue {@code q} busy with {@code op} requests of {@code length} bytes, as the kernel
     * does under a deep fio job, until {@code count} of them were answered. The offsets step through the first
     * {@code span} bytes of the device. Unlike {@link #read} and {@link #write}, the test kit allocates nothing per
     * request here: WRITE data comes from one buffer, READ data is copied into one buffer and dropped, and results
     * come back in batches on later turns of the loop, as completions do. A profiler then sees the library's own
     * per-request cost (the JMH benchmark uses it). One load at a time per queue; requests from {@link #read} and
     * friends may run beside it.
     *
     * @param q the queue index, from 0
     * @param op READ, WRITE or FLUSH
     * @param length the length of each request in bytes (0 for FLUSH)
     * @param span the offsets wrap at this many bytes (a multiple of {@code length}; at least {@code length})
     * @param count how many requests to answer
     * @return a Mono of the number of requests that failed, signalled once {@code count} were answered
     */
    public Mono<Long> load(int q, IoOp op, int length, long span, long count) {
        if (op != IoOp.READ && op != IoOp.WRITE && op != IoOp.FLUSH) {
            throw new IllegalArgumentException("load takes READ, WRITE or FLUSH; was " + op);
        }
        if (count < 1 || length < 0 || (op != IoOp.FLUSH && (length == 0 || span < length))) {
            throw new IllegalArgumentException(
                    "bad load: " + op + " length " + length + " span " + span + " count " + count);
        }
        VirtualTransport t = transports.get(q);
        return Mono.create(sink -> t.queue.loop().execute(() -> t.startLoad(op, length, span, count, sink)));
    }

    /**
     * Requests of queue {@code q} waiting for a free tag.
     *
     * @param q the queue index, from 0
     * @return requests of queue {@code q} waiting for a free tag
     */
    public int waiting(int q) {
        return transports.get(q).waitingCount;
    }

    /**
     * Requests of queue {@code q} holding a tag.
     *
     * @param q the queue index, from 0
     * @return requests of queue {@code q} holding a tag
     */
    public int inFlight(int q) {
        return transports.get(q).inFlightCount;
    }

    /**
     * Stops the device as STOP_DEV does: waiting requests fail with EIO, requests in flight finish, then every tag
     * is given back and the queues end.
     *
     * @return a Mono that completes once every queue has ended
     */
    public Mono<Void> stop() {
        transports.forEach(t -> t.queue.loop().execute(t::stop));
        return Flux.fromIterable(queues).flatMap(UbdQueue::onTerminated).then();
    }

    /** Stops the device (bounded to 10 s) and shuts its event loops down. */
    @Override
    public void close() {
        try {
            stop().block(Duration.ofSeconds(10));
        } finally {
            bridges.forEach(Disposable::dispose);
            queues.forEach(q -> q.metrics().close());
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    private record Done(int result, ByteBuf data) {}

    /** All of memory, for copies between native addresses, as the kernel's own copy is. */
    private static final MemorySegment MEMORY = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    /**
     * Copies as the kernel does, between native addresses: ByteBuf.setBytes between direct buffers goes through NIO
     * views, which allocate, and would blur what the library itself allocates.
     */
    private static void copy(ByteBuf src, int srcIndex, ByteBuf dst, int dstIndex, int length) {
        if (Buffers.isContiguousDirect(src) && Buffers.isContiguousDirect(dst)) {
            MemorySegment.copy(MEMORY, Buffers.address(src, srcIndex), MEMORY, Buffers.address(dst, dstIndex), length);
        } else {
            dst.setBytes(dstIndex, src, srcIndex, length);
        }
    }

    private static final int FETCHED = 0;
    private static final int COPIED_IN = 1;
    private static final int COPIED_OUT = 2;
    /** Marks a tag that serves the load. */
    private static final VirtualRequest LOADED = new VirtualRequest(0, 0, 0, null, null);

    /** A running {@link #load}: on its queue's loop only. */
    private static final class Load {
        final int opFlags;
        final int length;
        final long slots;
        final long count;
        final MonoSink<Long> sink;
        final ByteBuf data;
        long issued;
        long answered;
        long failed;
        int inFlight;

        Load(int opFlags, int length, long slots, long count, MonoSink<Long> sink, ByteBuf data) {
            this.opFlags = opFlags;
            this.length = length;
            this.slots = Math.max(1, slots);
            this.count = count;
            this.sink = sink;
            this.data = data;
        }

        void finish() {
            release();
            sink.success(failed);
        }

        void release() {
            if (data != null && data.refCnt() > 0) {
                data.release();
            }
        }

        void stopped() {
            sink.error(new UbdIoException(
                    Errno.EIO, "the device stopped after " + answered + " of " + count + " load requests"));
        }
    }

    private static final class VirtualRequest {
        final int opFlags;
        final long offset;
        final int length;
        final ByteBuf writeData;
        final MonoSink<Done> sink;
        ByteBuf readData;

        VirtualRequest(int opFlags, long offset, int length, ByteBuf writeData, MonoSink<Done> sink) {
            this.opFlags = opFlags;
            this.offset = offset;
            this.length = length;
            this.writeData = writeData;
            this.sink = sink;
        }

        private boolean released;

        /** Gives back the retained slice of the caller's data, once (a failed request passes here twice). */
        void release() {
            if (!released && writeData != null && writeData.refCnt() > 0) {
                released = true;
                writeData.release();
            }
        }
    }

    /** Plays the driver for one queue; every method runs on the queue's loop. */
    private final class VirtualTransport implements QueueTransport {
        final UbdQueue queue;
        final VirtualRequest[] slots;
        final boolean[] fetched;
        final ArrayDeque<VirtualRequest> waiting = new ArrayDeque<>();
        // Written on the loop only; read by tests from any thread.
        volatile int waitingCount;
        volatile int inFlightCount;
        boolean stopping;
        // The load (see load()): the tags it holds are marked with LOADED in slots.
        Load load;
        /** Completions not delivered yet, as a CQ ring: a kind and a tag (or result) per entry, delivered by drain. */
        final long[] pending;

        int pendingHead;
        int pendingCount;
        final Runnable drain = this::drain;
        /** Where the queue's requests and their completions go, from fetchAll on. */
        QueueEvents events;

        VirtualTransport(UbdQueue queue) {
            this.queue = queue;
            this.slots = new VirtualRequest[queue.depth()];
            this.fetched = new boolean[queue.depth()];
            this.pending = new long[queue.depth() * 2];
        }

        void startLoad(IoOp op, int length, long span, long count, MonoSink<Long> sink) {
            if (load != null || stopping) {
                sink.error(new IllegalStateException(
                        stopping ? "the device is stopped" : "queue " + queue.id() + " already runs a load"));
                return;
            }
            load = new Load(
                    op.code(),
                    length,
                    span / Math.max(1, length),
                    count,
                    sink,
                    op == IoOp.FLUSH
                            ? null
                            : allocator.directBuffer(length, length).writeZero(length));
            dispatch();
        }

        /** Issues the load's next request in a free, fetched tag. */
        private void issueLoad(int tag) {
            Load l = load;
            slots[tag] = LOADED;
            fetched[tag] = false;
            inFlightCount++;
            l.inFlight++;
            long offset = (l.issued++ % l.slots) * l.length;
            events.onFetched(tag, l.opFlags, offset, l.length, -1);
        }

        /** Delivers a completion on a later turn of the loop, as a CQE is. */
        private void defer(int kind, int tag, int res) {
            if (pendingCount == pending.length) {
                drain(); // cannot happen (a tag has one completion pending at most), but never lose one
            }
            pending[(pendingHead + pendingCount++) % pending.length] =
                    (long) kind << 56 | (long) tag << 32 | (res & 0xFFFF_FFFFL);
            if (pendingCount == 1) {
                queue.loop().execute(drain);
            }
        }

        private void drain() {
            int n = pendingCount;
            for (int i = 0; i < n && pendingCount > 0; i++) {
                long e = pending[pendingHead];
                pendingHead = (pendingHead + 1) % pending.length;
                pendingCount--;
                int tag = (int) (e >>> 32) & 0xFF_FFFF;
                int res = (int) e;
                switch ((int) (e >>> 56)) {
                    case COPIED_IN -> events.onCopiedIn(tag, res);
                    case COPIED_OUT -> events.onCopiedOut(tag, res);
                    default -> refetch(tag);
                }
            }
            if (pendingCount > 0) {
                queue.loop().execute(drain);
            }
        }

        private void refetch(int tag) {
            if (stopping) {
                events.onAborted(tag);
                return;
            }
            fetched[tag] = true;
            if (!waiting.isEmpty()) {
                dispatch();
            } else if (load != null && load.issued < load.count) {
                issueLoad(tag);
            }
        }

        void submit(VirtualRequest r) {
            queue.loop().execute(() -> {
                if (stopping) {
                    fail(r, Errno.EIO, "the device is stopped");
                    return;
                }
                waiting.add(r);
                dispatch();
            });
        }

        private void dispatch() {
            for (int tag = 0; tag < slots.length && !waiting.isEmpty(); tag++) {
                if (fetched[tag] && slots[tag] == null) {
                    VirtualRequest r = waiting.poll();
                    slots[tag] = r;
                    fetched[tag] = false;
                    inFlightCount++;
                    events.onFetched(tag, r.opFlags, r.offset, r.length, -1);
                }
            }
            waitingCount = waiting.size();
            for (int tag = 0; tag < slots.length && load != null && load.issued < load.count; tag++) {
                if (fetched[tag] && slots[tag] == null) {
                    issueLoad(tag);
                }
            }
        }

        @Override
        public void fetchAll(QueueEvents events) {
            this.events = Objects.requireNonNull(events, "events");
            Arrays.fill(fetched, true);
            dispatch();
        }

        @Override
        public void copyIn(int tag, ByteBuf dst, int length) {
            VirtualRequest r = slots[tag];
            if (r == LOADED) {
                copy(load.data, 0, dst, dst.writerIndex(), length);
                defer(COPIED_IN, tag, length);
                return;
            }
            int res;
            if (r == null || r.writeData == null || r.writeData.readableBytes() < length) {
                res = -Errno.EFAULT;
            } else {
                dst.setBytes(dst.writerIndex(), r.writeData, r.writeData.readerIndex(), length);
                res = length;
            }
            int result = res;
            // Like a CQE: delivered on a later turn of the loop.
            queue.loop().execute(() -> events.onCopiedIn(tag, result));
        }

        @Override
        public void copyOut(int tag, ByteBuf src, int length) {
            int result = takeReadData(tag, src, length);
            // Like a CQE: delivered on a later turn of the loop (the load's in a batch).
            if (slots[tag] == LOADED) {
                defer(COPIED_OUT, tag, result);
            } else {
                queue.loop().execute(() -> events.onCopiedOut(tag, result));
            }
        }

        /**
         * Takes a READ answer in pieces as the kernel transport does with its default copy (one pwritev, whose result
         * is known before the call returns), so that tests run the queue's vectored path and its buffer handling.
         */
        @Override
        public boolean copyOutVectored(int tag, ByteBuf src, int length) {
            events.onCopiedOut(tag, takeReadData(tag, src, length));
            return true;
        }

        /** Copies a READ's data out of {@code src} for the caller, as the kernel would: bytes copied, or -EFAULT. */
        private int takeReadData(int tag, ByteBuf src, int length) {
            VirtualRequest r = slots[tag];
            if (r == LOADED) {
                copy(src, src.readerIndex(), load.data, 0, length);
                return length;
            }
            if (r == null) {
                return -Errno.EFAULT;
            }
            if (r.readData != null) {
                r.readData.release();
            }
            r.readData = allocator.heapBuffer(length, length).writeBytes(src, src.readerIndex(), length);
            return length;
        }

        @Override
        public void commitAndFetch(int tag, int result) {
            VirtualRequest r = slots[tag];
            slots[tag] = null;
            if (r == LOADED) {
                inFlightCount--;
                Load l = load;
                l.inFlight--;
                if (result < 0 || (l.opFlags == UblkIo.OP_READ && result == 0)) {
                    l.failed++;
                }
                if (++l.answered == l.count) {
                    load = null;
                    l.finish();
                } else if (stopping && l.inFlight == 0) {
                    load = null;
                    l.release();
                }
                defer(FETCHED, tag, 0);
                return;
            }
            if (r != null) {
                inFlightCount--;
                complete(r, result);
            }
            if (stopping) {
                queue.loop().execute(() -> events.onAborted(tag));
            } else {
                fetched[tag] = true;
                dispatch();
            }
        }

        private void complete(VirtualRequest r, int result) {
            r.release();
            int op = UblkIo.op(r.opFlags);
            if (result < 0) {
                if (r.readData != null) {
                    r.readData.release();
                }
                fail(r, -result, "the request failed");
            } else if (op == UblkIo.OP_READ && (result == 0 || r.readData == null)) {
                // The kernel fails a READ that returned no bytes.
                if (r.readData != null) {
                    r.readData.release();
                }
                fail(r, Errno.EIO, "the read returned no data");
            } else {
                r.sink.success(new Done(result, r.readData));
            }
        }

        private void fail(VirtualRequest r, int errno, String why) {
            r.release();
            r.sink.error(new UbdIoException(errno, why));
        }

        void stop() {
            if (stopping) {
                return;
            }
            stopping = true;
            if (load != null) {
                // Its requests in flight still finish (their copies need its buffer); then it is dropped.
                load.stopped();
                if (load.inFlight == 0) {
                    load.release();
                    load = null;
                }
            }
            VirtualRequest r;
            while ((r = waiting.poll()) != null) {
                fail(r, Errno.EIO, "the device stopped");
            }
            for (int tag = 0; tag < slots.length; tag++) {
                if (fetched[tag] && slots[tag] == null) {
                    fetched[tag] = false;
                    events.onAborted(tag);
                }
            }
            waitingCount = 0;
        }
    }

    @Override
    public String toString() {
        return "VirtualDevice[queues=" + queues.size() + ", depth="
                + queues.get(0).depth() + "]";
    }
}

package dev.reactorubd.io;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdClosedException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.uring.IoUringAbi;
import dev.reactorubd.uring.Libc;
import dev.reactorubd.uring.MappedRegion;
import dev.reactorubd.uring.RingBufferTable;
import io.netty.buffer.ByteBuf;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.uring.IoUringIoEvent;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;

/**
 * The kernel side of a queue: ublk's IO commands and USER_COPY data transfers, submitted on the queue's Netty
 * io_uring event loop.
 *
 * <p>FETCH_REQ and COMMIT_AND_FETCH_REQ go out as {@code IORING_OP_URING_CMD} on {@code /dev/ublkcN}, with
 * {@code ublksrv_io_cmd} packed into the 8 bytes Netty writes at SQE offset 48 ({@code addr} stays 0, as USER_COPY
 * wants). Everything the loop queues in one turn reaches the kernel in one {@code io_uring_enter}.
 *
 * <p>Data moves at the request's USER_COPY offset on the same fd, straight between the kernel's request pages and
 * the backend's buffer: by default with {@code pread}/{@code pwrite} on the loop ({@link DataCopy#SYSCALL}), a
 * memory copy that never waits; or with {@code IORING_OP_READ}/{@code IORING_OP_WRITE} ({@link DataCopy#IO_URING}),
 * which the kernel runs on io-wq workers because the char device has no non-blocking read path, and so serves fewer
 * requests a second (docs/performance.md, "Copy paths", has the figures).
 *
 * <h2>Zero copy</h2>
 * On a device added with {@link dev.reactorubd.ctrl.UblkFeature#AUTO_BUF_REG} (Linux 6.16), each FETCH and
 * COMMIT_AND_FETCH also names, in the SQE's {@code addr}, a slot of the loop ring's buffer table ({@link
 * RingBufferTable}: slot {@code base + tag}) where the kernel registers the next request's pages; the queue then hands
 * READ and WRITE requests to a backend that serves them in place with {@code READ_FIXED}/{@code WRITE_FIXED} on the
 * same ring. Every command asks for the kernel's fallback: a request whose pages could not be registered arrives
 * flagged {@link UblkIo#F_NEED_REG_BUF} and moves with USER_COPY, as do all requests of a queue that got no slots.
 *
 * <p>Completions carry {@code kind << 12 | tag} as user data.
 */
public final class KernelQueueTransport implements QueueTransport, IoUringIoHandle {
    private static final int KIND_CMD = 0;
    private static final int KIND_COPY_IN = 1;
    private static final int KIND_COPY_OUT = 2;
    private static final int TAG_MASK = 0xFFF;
    private static final Logger LOG = LoggerFactory.getLogger(KernelQueueTransport.class);

    private final UbdQueue queue;
    private final int fd;
    private final MappedRegion descriptorArea;
    private final MemorySegment descriptors;
    private final DataCopy copy;
    /** Whether the device has AUTO_BUF_REG: every command then carries a {@code ublk_auto_buf_reg}. */
    private final boolean autoBufReg;
    /** This queue's slots in the loop ring's buffer table; null without AUTO_BUF_REG or when none could be had. */
    private RingBufferTable.Reservation slots;

    private volatile IoRegistration registration;
    /** Where completions are reported: the queue's tag engine, from {@link #fetchAll} on. On the loop. */
    private QueueEvents events;
    /** Pieces a composite READ answer is written from at most with one pwritev; beyond, it is gathered. */
    private static final int MAX_IOV = 64;
    /** The iovecs of copyOutVectored, made on first use (on the loop). */
    private MemorySegment iov;
    /** Set on the loop by {@link #close()}; completions after it are ignored (the descriptors are unmapped). */
    private boolean closed;

    private KernelQueueTransport(
            UbdQueue queue, int fd, MappedRegion descriptorArea, DataCopy copy, boolean autoBufReg) {
        this.queue = queue;
        this.fd = fd;
        this.descriptorArea = descriptorArea;
        this.descriptors = descriptorArea.segment();
        this.copy = copy;
        this.autoBufReg = autoBufReg;
    }

    /**
     * Registers a transport for {@code queue} with its event loop, which must be a Netty io_uring loop.
     *
     * @param queue the queue, whose loop must be a Netty io_uring event loop
     * @param fd          the open {@code /dev/ublkcN}
     * @param descriptorArea the queue's descriptor area, mapped read-only; the transport unmaps it on close
     * @param copy           how data moves when it is copied
     * @param autoBufReg     whether the device was added with AUTO_BUF_REG (see the class comment)
     * @return a {@code Mono} of the transport once registered with the loop, or an error if the loop is not an io_uring
     *         loop
     */
    // For the server, in this module: a mapping of the io_uring layer, which the module does not export to embedders.
    @SuppressWarnings("exports")
    public static Mono<KernelQueueTransport> register(
            UbdQueue queue, int fd, MappedRegion descriptorArea, DataCopy copy, boolean autoBufReg) {
        if (!(queue.loop() instanceof IoEventLoop loop) || !loop.isCompatible(KernelQueueTransport.class)) {
            return Mono.error(
                    new IllegalArgumentException(
                            "queue " + queue.id() + " runs on " + queue.loop()
                                    + ", which is not a Netty io_uring event loop: create the group with IoUringIoHandler.newFactory()"));
        }
        KernelQueueTransport t =
                new KernelQueueTransport(queue, fd, descriptorArea, Objects.requireNonNull(copy), autoBufReg);
        return Mono.create(sink -> loop.register(t).addListener(f -> {
            if (f.isSuccess()) {
                t.registration = (IoRegistration) f.getNow();
                sink.success(t);
            } else {
                sink.error(new UbdException(
                        "cannot register queue " + queue.id() + " with its io_uring loop: " + f.cause(), 0, f.cause()));
            }
        }));
    }

    @Override
    public void fetchAll(QueueEvents events) {
        this.events = Objects.requireNonNull(events, "events");
        if (autoBufReg && slots == null) {
            try {
                slots = RingBufferTable.reserve(registration, queue.depth());
                slots.guard(events::onBufferIdle);
                LOG.debug("device {} queue {}: zero copy through {}", queue.deviceId(), queue.id(), slots);
            } catch (UbdUnsupportedException e) {
                LOG.warn(
                        "device {} queue {}: no zero copy, requests move with USER_COPY: {}",
                        queue.deviceId(),
                        queue.id(),
                        e.getMessage());
            }
        }
        for (int tag = 0; tag < queue.depth(); tag++) {
            command(UblkIo.FETCH_REQ, tag, 0);
        }
    }

    /** How request data moves between the kernel and the backend's buffers. */
    public enum DataCopy {
        /** {@code pread}/{@code pwrite} on the loop thread: a memory copy in the kernel, done in the same turn. */
        SYSCALL,
        /** {@code IORING_OP_READ}/{@code WRITE}: the kernel punts them to io-wq workers (the char device has no
         * non-blocking path), which costs a thread hand-off per request. */
        IO_URING
    }

    @Override
    public void copyIn(int tag, ByteBuf dst, int length) {
        long address = Buffers.address(dst, dst.writerIndex());
        long offset = UblkIo.userCopyOffset(queue.id(), tag, 0);
        if (copy == DataCopy.SYSCALL) {
            events.onCopiedIn(tag, (int) Libc.pread(fd, address, length, offset));
        } else {
            submitCopy((byte) IoUringAbi.OP_READ, KIND_COPY_IN, tag, address, length, offset);
        }
    }

    @Override
    public void copyOut(int tag, ByteBuf src, int length) {
        long address = Buffers.address(src, src.readerIndex());
        long offset = UblkIo.userCopyOffset(queue.id(), tag, 0);
        if (copy == DataCopy.SYSCALL) {
            events.onCopiedOut(tag, (int) Libc.pwrite(fd, address, length, offset));
        } else {
            submitCopy((byte) IoUringAbi.OP_WRITE, KIND_COPY_OUT, tag, address, length, offset);
        }
    }

    /**
     * A composite READ answer is written from its pieces with one {@code pwritev}, where {@code pwrite} would need
     * them gathered into one buffer first, and is faster for a few pieces and more (CopyPathBenchmark; the figures
     * are in docs/performance.md, "Copy paths"). Only with {@link DataCopy#SYSCALL}, whose call
     * returns before the iovecs are reused; pieces that are not direct, or more than {@link #MAX_IOV}, are gathered.
     */
    @Override
    public boolean copyOutVectored(int tag, ByteBuf src, int length) {
        if (copy != DataCopy.SYSCALL || src.nioBufferCount() > MAX_IOV || !src.isDirect()) {
            return false;
        }
        ByteBuffer[] parts = src.nioBuffers(src.readerIndex(), length);
        for (ByteBuffer b : parts) {
            if (!b.isDirect()) {
                return false;
            }
        }
        if (iov == null) {
            iov = Arena.ofAuto().allocate(16L * MAX_IOV, 8);
        }
        for (int i = 0; i < parts.length; i++) {
            iov.set(
                    ValueLayout.JAVA_LONG,
                    16L * i,
                    MemorySegment.ofBuffer(parts[i]).address());
            iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, parts[i].remaining());
        }
        events.onCopiedOut(
                tag, (int) Libc.pwritev(fd, iov.address(), parts.length, UblkIo.userCopyOffset(queue.id(), tag, 0)));
        return true;
    }

    private void submitCopy(byte opcode, int kind, int tag, long address, int length, long offset) {
        submit(new IoUringIoOps(
                opcode,
                (byte) 0,
                (short) 0,
                fd,
                offset,
                address,
                length,
                0,
                data(kind, tag),
                (short) 0,
                (short) 0,
                0,
                0L));
    }

    /** With zero copy on, a commit may follow the backend's READ_FIXED or WRITE_FIXED on this same ring, linked. */
    @Override
    public boolean canLinkCommit() {
        return slots != null;
    }

    @Override
    public void holdBuffer(int tag) {
        if (slots != null) {
            slots.hold(tag);
        }
    }

    @Override
    public boolean retireBuffer(int tag) {
        return slots == null || slots.retire(tag);
    }

    @Override
    public void commitAndFetch(int tag, int result) {
        command(UblkIo.COMMIT_AND_FETCH_REQ, tag, result);
    }

    private void command(int cmdOp, int tag, int result) {
        submit(new IoUringIoOps(
                (byte) IoUringAbi.OP_URING_CMD,
                (byte) 0,
                (short) 0,
                fd,
                Integer.toUnsignedLong(cmdOp),
                bufferSlot(tag),
                0,
                0,
                data(KIND_CMD, tag),
                (short) 0,
                (short) 0,
                0,
                UblkIo.packCmd(queue.id(), tag, result)));
    }

    /** The SQE's {@code addr} of a command: 0, or with AUTO_BUF_REG the slot for the tag's next request. */
    private long bufferSlot(int tag) {
        if (!autoBufReg) {
            return 0L;
        }
        // Without slots, an index no table has: registration fails and the kernel falls back to USER_COPY.
        return UblkIo.autoBufReg(
                slots != null ? slots.base() + tag : UblkIo.AUTO_BUF_REG_NO_INDEX, UblkIo.AUTO_BUF_REG_FALLBACK);
    }

    /** The user data of a submission: small enough for Netty's fast path, which keeps it in 16 bits. */
    private static long data(int kind, int tag) {
        return kind << 12 | tag;
    }

    private void submit(IoUringIoOps ops) {
        IoRegistration r = registration;
        if (r == null || !r.isValid() || r.submit(ops) == 0) {
            // The loop is shutting down: nothing will complete; end the queue rather than wait forever.
            events.onTransportError(new UbdClosedException(
                    "the io_uring loop of queue " + queue.id() + " no longer takes submissions"));
        }
    }

    @Override
    public void handle(IoRegistration registration, IoEvent event) {
        if (closed || events == null) {
            return; // closed, or not started: nothing of ours was submitted
        }
        IoUringIoEvent e = (IoUringIoEvent) event;
        int data = (int) e.userData();
        int tag = data & TAG_MASK;
        int res = e.res();
        switch (data >>> 12) {
            case KIND_CMD -> {
                if (res == UblkIo.RES_OK) {
                    int opFlags = UblkIo.descOpFlags(descriptors, tag);
                    events.onFetched(
                            tag,
                            opFlags,
                            UblkIo.descStartSector(descriptors, tag) << 9,
                            (int) (UblkIo.descNrSectors(descriptors, tag) << 9),
                            slots != null && (opFlags & UblkIo.F_NEED_REG_BUF) == 0 ? slots.base() + tag : -1);
                } else if (res == UblkIo.RES_ABORT) {
                    events.onAborted(tag);
                } else if (res == -Errno.ECANCELED && events.onLinkedCommitCancelled(tag)) {
                    // A linked commit whose operation fell short: the queue commits the answer itself.
                    return;
                } else {
                    events.onTransportError(TagEngine.fetchFailed(queue.deviceId(), queue.id(), tag, res));
                }
            }
            case KIND_COPY_IN -> events.onCopiedIn(tag, res);
            case KIND_COPY_OUT -> events.onCopiedOut(tag, res);
            default ->
                events.onTransportError(new UbdException(
                        "unexpected completion " + e + " on queue " + queue.id() + ": " + Errno.describe(res)));
        }
    }

    /**
     * Stops taking completions and unmaps the descriptor area, on the queue's loop so that no completion can be
     * reading the descriptors meanwhile. The caller closes the fd after the returned Mono completes. Kernel
     * commands still pending keep their own reference to the file until the kernel ends them.
     *
     * @return a Mono that completes on the loop once the transport is shut down
     */
    public Mono<Void> shutdown() {
        return Mono.<Void>create(sink -> {
            try {
                queue.loop().execute(() -> {
                    close();
                    sink.success();
                });
            } catch (RejectedExecutionException e) {
                // The loop is gone: nothing runs on it any more.
                close();
                sink.success();
            }
        });
    }

    /** Like {@link #shutdown()}, without waiting; call it on the loop, or once the loop is gone. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        IoRegistration r = registration;
        if (r != null) {
            r.cancel();
        }
        if (slots != null && queue.loop().inEventLoop()) {
            slots.release(); // off the loop, the loop is gone, and its ring with the table
        }
        descriptorArea.close();
    }
}

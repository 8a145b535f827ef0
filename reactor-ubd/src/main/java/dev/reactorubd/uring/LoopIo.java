package dev.reactorubd.uring;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.uring.IoUringIoEvent;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoOps;
import io.netty.util.concurrent.EventExecutor;
import java.util.Arrays;
import java.util.concurrent.RejectedExecutionException;
import reactor.core.publisher.Mono;

/**
 * Any io_uring operation, submitted on one Netty io_uring event loop, with a callback for its completion: how a
 * backend does its own IO (file reads and writes, fsync, fallocate, block device commands) on the loop of the queue it
 * serves, with no thread pool and no blocking call.
 *
 * <h2>Threading</h2>
 * {@link #submit} is called on the loop, and completions are delivered there, in the turn that reaps them. Everything a
 * loop turn submits reaches the kernel in one {@code io_uring_enter}.
 *
 * <h2>Limits</h2>
 * At most {@value #MAX_IN_FLIGHT} operations in flight per instance (Netty carries 16 bits of user data per
 * operation); {@link #submit} answers {@code -EAGAIN} to the callback beyond that, and {@code -Errno.ESHUTDOWN} once closed
 * or once the loop no longer takes submissions.
 */
public final class LoopIo implements IoUringIoHandle {
    /** Operations in flight at most. */
    public static final int MAX_IN_FLIGHT = 1 << 15;

    /** Receives an operation's result: as in a CQE, bytes or 0 on success, {@code -errno} on failure. */
    @FunctionalInterface
    public interface Completion {
        /**
         * Receives the result, on the loop.
         *
         * @param res bytes or 0 on success, {@code -errno} on failure
         */
        void complete(int res);
    }

    /** Receives the result of the no-op that ends a chain nobody followed: nothing to do. */
    private static final Completion IGNORED = res -> {};

    private final IoEventLoop loop;
    private volatile IoRegistration registration;
    /** How full the loop's submission queue is, for linked pairs; null where it cannot be read (no links then). */
    private NettyRing.Room room;

    private Completion[] slots = new Completion[64];
    /** Per operation: the buffer-table slot a READ_FIXED / WRITE_FIXED names, plus one (0: none). */
    private int[] fixed = new int[64];
    /** Per operation: the SQE's user data, for a cancellation. */
    private long[] ids = new long[64];
    /** The loop ring's buffer table, once one is registered: it guards the slots of answered requests. */
    private RingBufferTable table;

    private int[] free = new int[64];
    private int freeCount;
    private int next;
    private int inFlight;
    private boolean closed;
    /** {@link #closeWhenIdle} was called: nothing new is taken, and the last completion closes. */
    private boolean closing;

    private LoopIo(IoEventLoop loop) {
        this.loop = loop;
    }

    /**
     * Registers a new instance with {@code loop}, which must be a Netty io_uring event loop.
     *
     * @param loop the event loop
     * @return a Mono of the registered instance
     * @throws IllegalArgumentException (as the Mono's error) when it is not one
     */
    public static Mono<LoopIo> register(EventExecutor loop) {
        if (!(loop instanceof IoEventLoop io) || !io.isCompatible(LoopIo.class)) {
            return Mono.error(new IllegalArgumentException(loop + " is not a Netty io_uring event loop: create the "
                    + "group with IoUringIoHandler.newFactory()"));
        }
        LoopIo l = new LoopIo(io);
        return Mono.create(sink -> io.register(l).addListener(f -> {
            if (f.isSuccess()) {
                try {
                    l.registration = (IoRegistration) f.getNow();
                    l.room = NettyRing.room(l.registration);
                } catch (Throwable e) { // never leave the subscriber waiting
                    sink.error(new UbdException("cannot register with the io_uring loop " + loop + ": " + e, 0, e));
                    return;
                }
                sink.success(l);
            } else {
                sink.error(new UbdException(
                        "cannot register with the io_uring loop " + loop + ": " + f.cause(), 0, f.cause()));
            }
        }));
    }

    /** {@return the loop operations run on} */
    public IoEventLoop loop() {
        return loop;
    }

    /**
     * Operations submitted and not yet completed. Read it on the loop.
     *
     * @return operations submitted and not yet completed
     */
    public int inFlight() {
        return inFlight;
    }

    /**
     * Submits one operation; on the loop only. It is refused at once, through {@code done}, with ESHUTDOWN once
     * closed, EAGAIN with {@value #MAX_IN_FLIGHT} operations in flight, and EFAULT for a READ_FIXED or WRITE_FIXED
     * whose buffer slot belongs to a request already answered.
     *
     * @param sqe the operation
     * @param done receives the result on the loop, once
     */
    public void submit(Sqe sqe, Completion done) {
        submit(sqe, false, done);
    }

    /** Enqueues one SQE with {@code sqeFlags}; {@code done} hears of a refusal at once. */
    private void enqueue(
            int opcode,
            int sqeFlags,
            int fd,
            long off,
            long addr,
            int len,
            int opFlags,
            int bufIndex,
            long addr3,
            Completion done) {
        if (closed || closing) {
            done.complete(-Errno.ESHUTDOWN);
            return;
        }
        if (inFlight >= MAX_IN_FLIGHT) {
            done.complete(-Errno.EAGAIN);
            return;
        }
        if (!admit(opcode, bufIndex)) {
            done.complete(-Errno.EFAULT);
            return;
        }
        int slot = take(done);
        markFixed(slot, opcode, bufIndex);
        IoRegistration r = registration;
        long id = (r == null || !r.isValid())
                ? 0
                : r.submit(new IoUringIoOps(
                        (byte) opcode,
                        (byte) sqeFlags,
                        (short) 0,
                        fd,
                        off,
                        addr,
                        len,
                        opFlags,
                        slot,
                        (short) bufIndex,
                        (short) 0,
                        0,
                        addr3));
        if (id == 0) {
            release(slot);
            done.complete(-Errno.ESHUTDOWN);
        } else {
            ids[slot] = id;
        }
    }

    private static boolean isFixed(int opcode) {
        return opcode == IoUringAbi.OP_READ_FIXED || opcode == IoUringAbi.OP_WRITE_FIXED;
    }

    /**
     * Whether an operation naming {@code bufIndex} may go: not when that slot of the ring's table belonged to a request
     * that has been answered (its pages are gone, or are already the tag's next request's). The answer is EFAULT, as
     * the kernel's for an empty slot, without reaching the kernel.
     */
    private boolean admit(int opcode, int bufIndex) {
        if (!isFixed(opcode)) {
            return true;
        }
        if (table == null) {
            IoRegistration r = registration;
            table = r == null ? null : RingBufferTable.of(r);
        }
        return table == null || table.begin(bufIndex);
    }

    private void markFixed(int slot, int opcode, int bufIndex) {
        fixed[slot] = isFixed(opcode) && table != null ? bufIndex + 1 : 0;
    }

    /**
     * Asks the kernel to cancel the operations in flight whose callback is {@code done} ({@code IORING_OP_ASYNC_CANCEL}
     * by their user data): each then completes as usual, with {@code -ECANCELED} if it had not finished. On the loop.
     *
     * @param done the callback given to {@code submit}
     * @return how many cancellations were submitted
     */
    public int cancel(Completion done) {
        IoRegistration r = registration;
        if (closed || r == null || !r.isValid()) {
            return 0;
        }
        int n = 0;
        for (int slot = 0; slot < next; slot++) {
            if (slots[slot] == done) {
                // The cancellation's own completion carries data no operation has, and is dropped by handle.
                r.submit(new IoUringIoOps(
                        (byte) IoUringAbi.OP_ASYNC_CANCEL,
                        (byte) 0,
                        (short) 0,
                        -1,
                        0L,
                        ids[slot],
                        0,
                        0,
                        (short) 0xFFFF,
                        (short) 0,
                        (short) 0,
                        0,
                        0L));
                n++;
            }
        }
        return n;
    }

    /**
     * How many SQEs may be enqueued, on the loop, before Netty must flush its submission queue: a chain of linked
     * operations ({@link #submit(Sqe, boolean, Completion)}) must be no longer, or a
     * flush would split it. 0 when that cannot be told (see {@link NettyRing}): do not link then.
     *
     * @return the free SQEs, or 0
     */
    public int room() {
        NettyRing.Room q = room;
        return q == null || closed || closing ? 0 : Math.max(0, Math.min(q.free(), MAX_IN_FLIGHT - inFlight));
    }

    /**
     * Submits one operation, perhaps linked to the next one enqueued on this loop's ring ({@code IOSQE_IO_LINK}: that
     * one starts only once this one succeeded in full, and is cancelled with {@code -ECANCELED} otherwise); on the
     * loop only. Enqueue a chain in one go, no longer than {@link #room()}, and end it with an operation that is not
     * linked: an open chain would take in whatever the loop submits next. Refused as {@link #submit(Sqe, Completion)}
     * is.
     *
     * @param sqe the operation
     * @param linkNext whether the next SQE enqueued is linked to this one
     * @param done receives the result on the loop, once
     */
    public void submit(Sqe sqe, boolean linkNext, Completion done) {
        enqueue(
                sqe.opcode(),
                linkNext ? IoUringAbi.IOSQE_IO_LINK : 0,
                sqe.fd(),
                sqe.off(),
                sqe.addr(),
                sqe.len(),
                sqe.opFlags(),
                sqe.bufIndex(),
                sqe.addr3(),
                done);
    }

    /**
     * Submits one operation (one that names a registered buffer, in practice) as {@link #submit(Sqe, Completion)}
     * does, and links to it the one SQE that {@code next} enqueues on this loop's ring right after
     * ({@code IOSQE_IO_LINK}): the kernel starts that SQE only once this operation succeeded in full (a read or write
     * that moved fewer bytes than {@code len} counts as failed), and otherwise completes it with {@code -ECANCELED}
     * without running it. Both reach the kernel in the same {@code io_uring_enter}, so a request's commit can follow
     * the IO that serves it with no turn of the loop in between. On the loop only.
     *
     * <p>Returns false, having submitted nothing, when the pair cannot be linked here: off the loop, once closed, with
     * {@value #MAX_IN_FLIGHT} operations in flight, where Netty's queue fill cannot be read, or when its queue has
     * no room for two (a flush between them would split the pair). Submit unlinked then. Should {@code next} enqueue
     * nothing (or throw), a no-op SQE ends the chain, so that no unrelated SQE is linked to this operation.
     *
     * @param sqe the operation
     * @param done receives this operation's result on the loop, once
     * @param next enqueues exactly one SQE on this loop's ring (through any registration with it)
     * @return whether both were enqueued, linked
     */
    public boolean submitLinked(Sqe sqe, Completion done, Runnable next) {
        IoRegistration r = registration;
        if (!loop.inEventLoop() || room() < 2 || r == null || !r.isValid()) {
            return false;
        }
        int opcode = sqe.opcode();
        int bufIndex = sqe.bufIndex();
        NettyRing.Room q = room;
        if (!admit(opcode, bufIndex)) {
            return false; // the plain submission that follows is refused as well, with its EFAULT
        }
        int slot = take(done);
        markFixed(slot, opcode, bufIndex);
        long id = r.submit(new IoUringIoOps(
                (byte) opcode,
                (byte) IoUringAbi.IOSQE_IO_LINK,
                (short) 0,
                sqe.fd(),
                sqe.off(),
                sqe.addr(),
                sqe.len(),
                sqe.opFlags(),
                slot,
                (short) bufIndex,
                (short) 0,
                0,
                sqe.addr3()));
        if (id == 0) {
            release(slot);
            return false;
        }
        ids[slot] = id;
        int linked = q.tail();
        try {
            next.run();
        } finally {
            if (q.tail() == linked) {
                // Nothing followed: end the chain here rather than link whatever is submitted next.
                enqueue(IoUringAbi.OP_NOP, 0, -1, 0L, 0L, 0, 0, 0, 0L, IGNORED);
            }
        }
        return true;
    }

    private int take(Completion done) {
        int slot;
        if (freeCount > 0) {
            slot = free[--freeCount];
        } else {
            slot = next++;
            if (slot == slots.length) {
                slots = Arrays.copyOf(slots, slots.length * 2);
                fixed = Arrays.copyOf(fixed, fixed.length * 2);
                ids = Arrays.copyOf(ids, ids.length * 2);
                free = Arrays.copyOf(free, free.length * 2);
            }
        }
        slots[slot] = done;
        inFlight++;
        return slot;
    }

    /** Frees an operation's slot; a registered-buffer slot it named is told it is done with (see admit). */
    private Completion release(int slot) {
        Completion c = slots[slot];
        slots[slot] = null;
        int b = fixed[slot];
        if (b != 0) {
            fixed[slot] = 0;
            table.end(b - 1);
        }
        free[freeCount++] = slot;
        inFlight--;
        return c;
    }

    @Override
    public void handle(IoRegistration registration, IoEvent event) {
        IoUringIoEvent e = (IoUringIoEvent) event;
        int slot = (int) (e.userData() & 0xFFFF);
        if (slot >= next || slots[slot] == null) {
            return; // a cancellation's own completion, or one after close
        }
        Completion c = slots[slot];
        int b = fixed[slot];
        fixed[slot] = 0; // told after the callback, which may submit the rest of a transfer naming the same slot
        release(slot);
        c.complete(e.res());
        if (b != 0) {
            table.end(b - 1);
        }
        if (closing && inFlight == 0) {
            close();
        }
    }

    /**
     * Stops taking operations and leaves the loop; on the loop. Operations still in flight are cancelled by Netty
     * and their callbacks are not called: close only when none is (a queue that ended has none).
     */
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
        // Their callbacks will not run: the slots they named are no longer waited for.
        for (int slot = 0; slot < next; slot++) {
            if (slots[slot] != null) {
                release(slot);
            }
        }
    }

    /**
     * Closes once no operation is left in flight; on the loop. From now on every submission is refused with {@code
     * -ESHUTDOWN}; the operations in flight complete as usual, so that their callbacks release what they hold (a
     * buffer the kernel is filling is released only once the kernel is done with it), and the last completion closes.
     * Use it where operations may be in flight, for example when the queue a backend was bound to ends while a
     * mirror's resync still reads through it.
     */
    public void closeWhenIdle() {
        if (closed || closing) {
            return;
        }
        closing = true;
        IoRegistration r = registration;
        if (inFlight == 0 || r == null || !r.isValid()) {
            close();
        }
    }

    /** {@link #closeWhenIdle} on the loop, from any thread (a loop that is gone took its operations with it). */
    public void closeWhenIdleOnLoop() {
        onLoop(this::closeWhenIdle);
    }

    /** Closes on the loop, from any thread. */
    public void closeOnLoop() {
        onLoop(this::close);
    }

    /** Runs {@code task} on the loop: at once when already there; not at all when the loop is gone (its ring too). */
    private void onLoop(Runnable task) {
        if (loop.inEventLoop()) {
            task.run();
        } else {
            try {
                loop.execute(task);
            } catch (RejectedExecutionException e) {
                // The loop is gone, and its ring with it.
            }
        }
    }
}

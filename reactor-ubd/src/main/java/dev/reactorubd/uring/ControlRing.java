package dev.reactorubd.uring;

import static dev.reactorubd.uring.IoUringAbi.*;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdClosedException;
import dev.reactorubd.UbdException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.scheduler.NonBlocking;
import reactor.core.scheduler.Schedulers;

/**
 * An io_uring with 128-byte SQEs for ublk control commands, built on {@code java.lang.foreign}.
 *
 * <h2>Behaviour</h2>
 * {@link #submit(Operation)} returns a lazy {@link Mono}: subscribing writes the SQE and submits it at once
 * (control commands are punted by the kernel to its io-wq workers, so submission never waits for the command);
 * the Mono then signals the operation's result when its CQE arrives. Cancelling the subscription (for example
 * through {@code Mono.timeout}) sends {@code IORING_OP_ASYNC_CANCEL} for it, which interrupts a command waiting
 * inside the driver. Buffers an operation allocates from its {@link Arena} live until its CQE has arrived, even
 * when the subscriber is gone, because the kernel may still write into them.
 *
 * <h2>Threading</h2>
 * Any thread may submit; submission never parks a thread (a contended submitter leaves its SQE to the thread
 * that holds the ring). Completions are delivered on the ring's own reaper thread, named after the ring, which
 * Reactor treats as non-blocking: do not block in a subscriber; hop with {@code publishOn} for heavy work.
 *
 * <h2>Closing</h2>
 * {@link #close()} fails operations that have not completed with {@link UbdClosedException}, cancels them in the
 * kernel, waits a bounded time for the reaper to see them end, then unmaps and closes the ring. If the kernel
 * does not let go in time, the ring's memory is left mapped (a small leak) rather than freed under the kernel.
 */
public final class ControlRing implements AutoCloseable {
    /**
     * One SQE and the mapping of its result.
     *
     * @param <T> the type of the result
     */
    public interface Operation<T> {
        /**
         * Fills the zeroed 128-byte {@code sqe}: opcode, fd, command; not {@code user_data}. Buffers the command needs
         * come from {@code arena}, which stays open until the CQE arrives.
         *
         * @param sqe the submission queue entry to fill, zeroed
         * @param arena where the command's buffers are allocated; closed after {@link #complete}
         */
        void prepare(MemorySegment sqe, Arena arena);

        /**
         * Maps the CQE's {@code res} to the result, on the reaper thread, while the arena is still open. Throw to
         * signal an error; return {@code null} for an empty Mono.
         *
         * @param res the result: a byte count or 0, or {@code -errno}
         * @return the Mono's value, or {@code null} for an empty Mono
         */
        T complete(int res);
    }

    private static final long CLOSE_WAIT_MILLIS = 5_000;
    private static final long CANCEL_BIT = 1L << 62;
    private static final long WAKE_ID = 1L << 61;
    private static final AtomicInteger RING_IDS = new AtomicInteger();
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

    private final String name;
    private final int ringFd;
    private final int sqEntries;
    private final int cqEntries;
    private final long ringLength;
    private final long sqesLength;
    private final MemorySegment ring;
    private final MemorySegment sqes;
    private final long sqHead, sqTail, sqMask, sqArray;
    private final long cqHead, cqTail, cqMask, cqes;

    private final Map<Long, InFlight<?>> inFlight = new ConcurrentHashMap<>();
    private final Queue<InFlight<?>> toSubmit = new ConcurrentLinkedQueue<>();
    private final ReentrantLock sqLock = new ReentrantLock();
    private final AtomicLong ids = new AtomicLong(1);
    private final AtomicBoolean closing = new AtomicBoolean();
    private final Reaper reaper;
    private volatile boolean reaperFailed;

    private ControlRing(String name, int entries) {
        this.name = name;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = arena.allocate(PARAMS);
            params.set(ValueLayout.JAVA_INT, paramsOffset("flags"), SETUP_SQE128 | SETUP_CQSIZE | SETUP_CLAMP);
            params.set(ValueLayout.JAVA_INT, paramsOffset("cq_entries"), entries * 4);
            int fd = Libc.ioUringSetup(entries, params);
            if (fd < 0) {
                throw new UbdException(
                        "io_uring_setup failed: " + Errno.describe(fd)
                                + (fd == -Errno.EPERM || fd == -Errno.ENOSYS
                                        ? "; io_uring may be disabled (sysctl kernel.io_uring_disabled) or filtered by seccomp"
                                        : ""),
                        fd);
            }
            this.ringFd = fd;
            int features = params.get(ValueLayout.JAVA_INT, paramsOffset("features"));
            if ((features & FEAT_SINGLE_MMAP) == 0) {
                Libc.close(fd);
                throw new UbdException("this kernel's io_uring lacks IORING_FEAT_SINGLE_MMAP (Linux 5.4+ needed)");
            }
            this.sqEntries = params.get(ValueLayout.JAVA_INT, paramsOffset("sq_entries"));
            this.cqEntries = params.get(ValueLayout.JAVA_INT, paramsOffset("cq_entries"));
            long sqArrayOff = Integer.toUnsignedLong(params.get(ValueLayout.JAVA_INT, paramsOffset("sq_off", "array")));
            long cqesOff = Integer.toUnsignedLong(params.get(ValueLayout.JAVA_INT, paramsOffset("cq_off", "cqes")));
            this.ringLength = Math.max(sqArrayOff + 4L * sqEntries, cqesOff + CQE_SIZE * cqEntries);
            this.sqesLength = SQE128_SIZE * sqEntries;
            long ringAddr = Libc.mmap(
                    ringLength,
                    Libc.PROT_READ | 2 /* PROT_WRITE */,
                    Libc.MAP_SHARED | Libc.MAP_POPULATE,
                    fd,
                    OFF_SQ_RING);
            if (ringAddr < 0) {
                Libc.close(fd);
                throw new UbdException(
                        "mmap of the io_uring rings failed: " + Errno.describe((int) ringAddr), (int) ringAddr);
            }
            long sqesAddr =
                    Libc.mmap(sqesLength, Libc.PROT_READ | 2, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, OFF_SQES);
            if (sqesAddr < 0) {
                Libc.munmap(ringAddr, ringLength);
                Libc.close(fd);
                throw new UbdException(
                        "mmap of the io_uring SQEs failed: " + Errno.describe((int) sqesAddr), (int) sqesAddr);
            }
            this.ring = MemorySegment.ofAddress(ringAddr).reinterpret(ringLength);
            this.sqes = MemorySegment.ofAddress(sqesAddr).reinterpret(sqesLength);
            this.sqHead = u32(params, "sq_off", "head");
            this.sqTail = u32(params, "sq_off", "tail");
            this.sqMask = ring.get(ValueLayout.JAVA_INT, u32(params, "sq_off", "ring_mask"));
            this.sqArray = sqArrayOff;
            this.cqHead = u32(params, "cq_off", "head");
            this.cqTail = u32(params, "cq_off", "tail");
            this.cqMask = ring.get(ValueLayout.JAVA_INT, u32(params, "cq_off", "ring_mask"));
            this.cqes = cqesOff;
        }
        this.reaper = new Reaper(name);
        this.reaper.start();
    }

    private static long u32(MemorySegment params, String... path) {
        return Integer.toUnsignedLong(params.get(ValueLayout.JAVA_INT, paramsOffset(path)));
    }

    /**
     * Creates a ring with room for {@code entries} SQEs (rounded up to a power of two by the kernel) and starts its
     * reaper thread.
     *
     * @param name the prefix of the name of the ring and its reaper thread
     * @param entries the number of submission queue entries
     * @return the ring; close it to stop its thread and cancel what is in flight
     * @throws UbdException when io_uring is not available (the message says why)
     */
    public static ControlRing open(String name, int entries) {
        return new ControlRing(name + "-" + RING_IDS.incrementAndGet(), entries);
    }

    /** {@return the ring's name, which its reaper thread bears} */
    public String name() {
        return name;
    }

    /** {@return number of SQ entries the kernel gave the ring} */
    public int sqEntries() {
        return sqEntries;
    }

    /** {@return operations submitted (or waiting to be) whose CQE has not arrived} */
    public int inFlight() {
        return inFlight.size();
    }

    /**
     * A lazy Mono of one operation; see the class comment for its behaviour.
     *
     * @param op how to fill the SQE and map its result
     * @param <T> the type of the result
     * @return a lazy Mono of one operation; see the class comment for its behaviour
     */
    public <T> Mono<T> submit(Operation<T> op) {
        return Mono.create(sink -> {
            if (closing.get()) {
                sink.error(new UbdClosedException("io_uring " + name + " is closed"));
                return;
            }
            InFlight<T> f = new InFlight<>(ids.getAndIncrement(), op, sink);
            inFlight.put(f.id, f);
            sink.onCancel(() -> cancel(f));
            toSubmit.add(f);
            drain();
            if (closing.get()) {
                // close() may have run between the check above and put(); make sure we are not forgotten.
                f.fail(new UbdClosedException("io_uring " + name + " is closed"));
            }
        });
    }

    /**
     * An operation that does nothing; completes with 0. For tests and for waking the reaper.
     *
     * @return an operation that does nothing; completes with 0
     */
    public Mono<Integer> nop() {
        return submit(NOP);
    }

    private static final Operation<Integer> NOP = new Operation<>() {
        @Override
        public void prepare(MemorySegment sqe, Arena arena) {
            sqe.set(ValueLayout.JAVA_BYTE, SQE_OPCODE, (byte) OP_NOP);
        }

        @Override
        public Integer complete(int res) {
            return res;
        }
    };

    private void cancel(InFlight<?> target) {
        if (target.done.get() || closing.get()) {
            return;
        }
        target.done.set(true);
        InFlight<Void> c = new InFlight<>(ids.getAndIncrement() | CANCEL_BIT, cancelOf(target.id), null);
        inFlight.put(c.id, c);
        toSubmit.add(c);
        drain();
    }

    /**
     * Moves queued operations into the SQ and submits them. Never parks: if another thread holds the SQ, it will
     * see our entries when it re-checks the queue after unlocking.
     */
    private void drain() {
        while (!toSubmit.isEmpty() && sqLock.tryLock()) {
            try {
                if (released.get()) {
                    InFlight<?> late;
                    while ((late = toSubmit.poll()) != null) {
                        inFlight.remove(late.id);
                        late.fail(new UbdClosedException("io_uring " + name + " is closed"));
                        late.arena.close();
                    }
                    return;
                }
                int queued = 0;
                int head = (int) INT.getAcquire(ring, sqHead);
                int tail = (int) INT.get(ring, sqTail);
                InFlight<?> f;
                while (tail - head < sqEntries && (f = toSubmit.poll()) != null) {
                    if (f.done.get() && (f.id & CANCEL_BIT) == 0) {
                        // Cancelled before it reached the kernel: nothing to wait for.
                        inFlight.remove(f.id);
                        f.arena.close();
                        continue;
                    }
                    int index = (int) (tail & sqMask);
                    MemorySegment sqe = sqes.asSlice(index * SQE128_SIZE, SQE128_SIZE);
                    sqe.fill((byte) 0);
                    try {
                        f.op.prepare(sqe, f.arena);
                    } catch (RuntimeException e) {
                        inFlight.remove(f.id);
                        f.fail(e);
                        f.arena.close();
                        continue;
                    }
                    sqe.set(ValueLayout.JAVA_LONG, SQE_USER_DATA, f.id);
                    ring.set(ValueLayout.JAVA_INT, sqArray + 4L * index, index);
                    tail++;
                    queued++;
                }
                if (queued > 0) {
                    INT.setRelease(ring, sqTail, tail);
                    int r;
                    do {
                        r = Libc.ioUringEnter(ringFd, queued, 0, 0);
                    } while (r == -Errno.EINTR);
                    if (r < 0) {
                        failAll(new UbdException("io_uring_enter failed on " + name + ": " + Errno.describe(r), r));
                    }
                }
            } finally {
                sqLock.unlock();
            }
        }
    }

    private void failAll(UbdException e) {
        for (InFlight<?> f : inFlight.values()) {
            f.fail(e);
        }
    }

    /** Reaps every CQE present; returns how many. Runs on the reaper thread only. */
    private int reap() {
        int head = (int) INT.get(ring, cqHead);
        int tail = (int) INT.getAcquire(ring, cqTail);
        int n = 0;
        while (head != tail) {
            long off = cqes + (head & cqMask) * CQE_SIZE;
            long userData = ring.get(ValueLayout.JAVA_LONG, off + CQE_USER_DATA);
            int res = ring.get(ValueLayout.JAVA_INT, off + CQE_RES);
            head++;
            n++;
            INT.setRelease(ring, cqHead, head);
            InFlight<?> f = inFlight.remove(userData);
            if (f != null) {
                f.deliver(res);
            }
        }
        return n;
    }

    /**
     * Fails every unfinished operation, cancels them in the kernel, and releases the ring once the reaper has seen
     * them end (at most a few seconds). Idempotent.
     */
    @Override
    public void close() {
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        UbdClosedException closed = new UbdClosedException("io_uring " + name + " was closed");
        for (InFlight<?> f : inFlight.values()) {
            if ((f.id & CANCEL_BIT) == 0 && !f.done.get()) {
                f.fail(closed);
                InFlight<Void> c = new InFlight<>(ids.getAndIncrement() | CANCEL_BIT, cancelOf(f.id), null);
                inFlight.put(c.id, c);
                toSubmit.add(c);
            }
        }
        InFlight<Integer> wake = new InFlight<>(WAKE_ID, NOP, null);
        inFlight.put(wake.id, wake);
        toSubmit.add(wake);
        drain();
        if (Thread.currentThread() != reaper) {
            try {
                reaper.join(CLOSE_WAIT_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (!reaper.isAlive()) {
            release();
        }
        // else: the reaper will release() when the kernel lets go of the last operation.
    }

    private static Operation<Void> cancelOf(long target) {
        return new Operation<>() {
            @Override
            public void prepare(MemorySegment sqe, Arena arena) {
                sqe.set(ValueLayout.JAVA_BYTE, SQE_OPCODE, (byte) OP_ASYNC_CANCEL);
                sqe.set(ValueLayout.JAVA_INT, SQE_FD, -1);
                sqe.set(ValueLayout.JAVA_LONG, SQE_ADDR, target);
            }

            @Override
            public Void complete(int res) {
                return null;
            }
        };
    }

    private final AtomicBoolean released = new AtomicBoolean();

    private void release() {
        sqLock.lock();
        try {
            if (!released.compareAndSet(false, true)) {
                return;
            }
            Libc.munmap(sqes.address(), sqesLength);
            Libc.munmap(ring.address(), ringLength);
            Libc.close(ringFd);
        } finally {
            sqLock.unlock();
        }
    }

    @Override
    public String toString() {
        return "ControlRing[" + name + ", fd=" + ringFd + ", sq=" + sqEntries + ", cq=" + cqEntries + "]";
    }

    private final class Reaper extends Thread implements NonBlocking {
        Reaper(String name) {
            super(name);
            setDaemon(true);
        }

        @Override
        public void run() {
            while (true) {
                reap();
                if (closing.get() && inFlight.isEmpty()) {
                    break;
                }
                int r = Libc.ioUringEnter(ringFd, 0, 1, ENTER_GETEVENTS);
                if (r < 0 && r != -Errno.EINTR && r != -Errno.EAGAIN && r != -Errno.EBUSY) {
                    reaperFailed = true;
                    failAll(new UbdException(
                            "io_uring_enter(GETEVENTS) failed on " + name + ": " + Errno.describe(r), r));
                    return;
                }
                // Operations queued while the SQ lock was busy are picked up here too.
                drain();
            }
            // Every operation has ended: the kernel holds nothing of ours any more. Release off this thread, which
            // must not park, since a submitter may still hold the SQ lock for a moment.
            Schedulers.boundedElastic().schedule(ControlRing.this::release);
        }
    }

    private static final class InFlight<T> {
        final long id;
        final Operation<T> op;
        final MonoSink<T> sink;
        final Arena arena = Arena.ofShared();
        final AtomicBoolean done = new AtomicBoolean();

        InFlight(long id, Operation<T> op, MonoSink<T> sink) {
            this.id = id;
            this.op = op;
            this.sink = sink;
        }

        void deliver(int res) {
            try {
                T value;
                try {
                    value = op.complete(res);
                } catch (RuntimeException e) {
                    if (done.compareAndSet(false, true) && sink != null) {
                        sink.error(e);
                    }
                    return;
                }
                if (done.compareAndSet(false, true) && sink != null) {
                    if (value == null) {
                        sink.success();
                    } else {
                        sink.success(value);
                    }
                }
            } finally {
                arena.close();
            }
        }

        void fail(Throwable e) {
            if (done.compareAndSet(false, true) && sink != null) {
                sink.error(e);
            }
        }
    }

    /** For tests: waits until the reaper thread ended, at most {@code millis}. */
    boolean awaitReaperExit(long millis) throws InterruptedException {
        reaper.join(millis);
        return !reaper.isAlive() && !reaperFailed;
    }
}

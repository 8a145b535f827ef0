package dev.reactorubd.uring;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdUnsupportedException;
import io.netty.channel.IoRegistration;
import io.netty.channel.uring.IoUringIoHandler;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.function.IntConsumer;

/**
 * The registered-buffer table of a Netty io_uring event loop's ring, shared by every queue that runs on that loop: how
 * ublk's zero copy ({@code UBLK_F_AUTO_BUF_REG}, Linux 6.16) reaches a ring that Netty owns.
 *
 * <p>With AUTO_BUF_REG the kernel registers each request's pages in the buffer table of the ring that fetched the
 * request, at the slot the FETCH named, so that {@code READ_FIXED}/{@code WRITE_FIXED} on that same ring move the data
 * between a file and the request with no copy through userspace. Netty sets up no buffer table, and offers no way to
 * register one; so the first queue that asks registers a sparse table of {@value #SLOTS} slots on the loop's ring
 * (through the ring's fd, which Netty keeps private and {@link NettyRing} reads), and each
 * queue then reserves {@code depth} consecutive slots of it, one per tag. docs/zero-copy.md weighs this against the
 * other ways.
 *
 * <h2>Threading</h2>
 * {@link #reserve} and {@link Reservation#release()} run on the loop: Netty's rings are
 * {@code IORING_SETUP_SINGLE_ISSUER}, whose kernel takes {@code io_uring_register} only from the submitting thread.
 *
 * <h2>Errors</h2>
 * {@link #reserve} throws {@link UbdUnsupportedException} saying why there is no table (Netty's internals changed, the
 * application registered a table of its own on that ring, the table is full); the caller then moves data with
 * USER_COPY, which always works.
 */
public final class RingBufferTable {
    /** Slots of each loop's table: the most a ring may have ({@code IORING_MAX_REG_BUFFERS}), 8 bytes each in the kernel. */
    public static final int SLOTS = IoUringAbi.MAX_REG_BUFFERS;

    /** One table per loop, keyed by the loop's io handler; weak so that a loop that is gone takes its entry along. */
    private static final Map<IoUringIoHandler, RingBufferTable> TABLES = new WeakHashMap<>();

    private final int ringFd;
    /** Why there is no table on this ring, or null when there is one. */
    private final String unusable;

    private final BitSet used = new BitSet(SLOTS);
    /**
     * The reservation of each slot whose uses are guarded ({@link Reservation#guard}), else null; on the loop. Made
     * with the first guard, so a table nobody guards costs nothing.
     */
    private Reservation[] guarded;

    private RingBufferTable(int ringFd, String unusable) {
        this.ringFd = ringFd;
        this.unusable = unusable;
    }

    /**
     * The table of the ring {@code registration} belongs to, or null when none was registered there (yet).
     *
     * @param registration a registration with a Netty io_uring event loop
     * @return the loop's table, or null
     */
    static RingBufferTable of(IoRegistration registration) {
        if (!(registration.attachment() instanceof IoUringIoHandler handler)) {
            return null;
        }
        synchronized (TABLES) {
            RingBufferTable t = TABLES.get(handler);
            return t == null || t.unusable != null ? null : t;
        }
    }

    /**
     * An operation naming {@code slot} is about to be submitted, on the loop. Refused (false) when the slot is guarded
     * and no request holds it: its request was answered, and the slot may already hold the pages of the tag's next
     * request, which the operation must never touch. Otherwise counted until {@link #end}.
     */
    boolean begin(int slot) {
        Reservation r = guarded == null || slot < 0 || slot >= SLOTS ? null : guarded[slot];
        return r == null || r.begin(slot - r.base);
    }

    /** An operation that {@link #begin} let through is back from the kernel (or will never be), on the loop. */
    void end(int slot) {
        Reservation r = guarded == null || slot < 0 || slot >= SLOTS ? null : guarded[slot];
        if (r != null) {
            r.end(slot - r.base);
        }
    }

    /** Consecutive slots of a loop's table, one per tag of a queue. */
    public final class Reservation {
        private final int base;
        private final int count;
        private boolean released;
        /** Per slot while guarded: whether a request holds it, operations in flight naming it, a waiter for idle. */
        private boolean[] held;

        private int[] uses;
        private boolean[] waiting;
        private IntConsumer whenIdle;

        private Reservation(int base, int count) {
            this.base = base;
            this.count = count;
        }

        /** {@return the first slot; tag {@code t} uses slot {@code base() + t}} */
        public int base() {
            return base;
        }

        /** {@return how many slots} */
        public int count() {
            return count;
        }

        /**
         * Registers the application's own memory in one of the slots (as {@code IORING_REGISTER_BUFFERS_UPDATE}
         * does), for {@code READ_FIXED} / {@code WRITE_FIXED} from that loop, addressed by its native address; the
         * memory must stay valid until the slot is emptied (by {@link #release()}, or by a ublk request taking the
         * slot). ublk fills the slots itself; this is for buffers of the application's and for tests. On the loop (its
         * ring takes registrations from its own thread only).
         *
         * @param index the slot, from 0 to {@link #count()} - 1 of this reservation
         * @param memory the memory to register: native, at most 1 GiB
         * @throws IllegalArgumentException for a slot outside the reservation
         * @throws dev.reactorubd.UbdException when the kernel refuses (its errno)
         */
        public void register(int index, MemorySegment memory) {
            if (index < 0 || index >= count || released) {
                throw new IllegalArgumentException(
                        "slot " + index + " is not one of " + this + (released ? " (released)" : ""));
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment iovec = arena.allocate(16, 8);
                iovec.set(ValueLayout.JAVA_LONG, 0, memory.address());
                iovec.set(ValueLayout.JAVA_LONG, 8, memory.byteSize());
                MemorySegment upd = arena.allocate(IoUringAbi.RSRC_STRUCT_SIZE, 8); // struct io_uring_rsrc_update2
                upd.set(ValueLayout.JAVA_INT, 0, base + index);
                upd.set(ValueLayout.JAVA_LONG, 8, iovec.address());
                upd.set(ValueLayout.JAVA_INT, 24, 1);
                int r = Libc.ioUringRegister(
                        ringFd, IoUringAbi.REGISTER_BUFFERS_UPDATE, upd.address(), IoUringAbi.RSRC_STRUCT_SIZE);
                if (r < 0) {
                    throw new UbdException(
                            "cannot register " + memory.byteSize() + " bytes in slot " + (base + index) + " of ring fd "
                                    + ringFd + ": " + Errno.describe(r),
                            -r);
                }
            }
        }

        /**
         * Guards the slots from here on: an operation ({@link LoopIo}'s {@code READ_FIXED} / {@code WRITE_FIXED})
         * naming a slot is let through only while a request {@link #hold holds} it, and those in flight are counted,
         * so that a request is committed (and its slot given to the tag's next request) only once nothing that names
         * it is still in the kernel or in the loop's submission queue. On the loop.
         *
         * @param whenIdle told, on the loop, the index of a slot that {@link #retire} found busy, once its last
         *                 operation is back
         */
        public void guard(IntConsumer whenIdle) {
            if (held != null) {
                throw new IllegalStateException(this + " is already guarded");
            }
            held = new boolean[count];
            uses = new int[count];
            waiting = new boolean[count];
            this.whenIdle = whenIdle;
            if (guarded == null) {
                guarded = new Reservation[SLOTS];
            }
            Arrays.fill(guarded, base, base + count, this);
        }

        /**
         * A request now holds slot {@code index} (the kernel registered its pages there): operations naming it are
         * let through. On the loop.
         *
         * @param index the slot, from 0 to {@link #count()} - 1
         */
        public void hold(int index) {
            if (held != null) {
                held[index] = true;
                waiting[index] = false;
            }
        }

        /**
         * The request holding slot {@code index} was answered: no operation naming the slot is let through any more.
         * Returns whether none is in flight either, so that the request may be committed now; otherwise {@code
         * whenIdle} hears of the slot once the last one is back. On the loop.
         *
         * @param index the slot, from 0 to {@link #count()} - 1
         * @return whether no operation naming the slot is in flight
         */
        public boolean retire(int index) {
            if (held == null) {
                return true;
            }
            held[index] = false;
            if (uses[index] == 0) {
                return true;
            }
            waiting[index] = true;
            return false;
        }

        /**
         * {@return operations naming slot {@code index} in flight now (0 when the slots are not guarded); on the loop}
         *
         * @param index the slot, from 0 to {@link #count()} - 1
         */
        public int uses(int index) {
            return uses == null ? 0 : uses[index];
        }

        private boolean begin(int index) {
            if (!held[index]) {
                return false;
            }
            uses[index]++;
            return true;
        }

        private void end(int index) {
            if (uses[index] > 0 && --uses[index] == 0 && waiting[index]) {
                waiting[index] = false;
                whenIdle.accept(index);
            }
        }

        /**
         * Empties the slots (a buffer the kernel left registered in one is dropped from the table; the kernel keeps it
         * alive while an operation still uses it) and gives them back. On the loop, once no request uses them; again
         * is a no-op.
         */
        public void release() {
            if (released) {
                return;
            }
            released = true;
            if (held != null && guarded != null) {
                Arrays.fill(guarded, base, base + count, null);
            }
            clear(base, count);
            synchronized (TABLES) {
                used.clear(base, base + count);
            }
        }

        @Override
        public String toString() {
            return "slots " + base + ".." + (base + count - 1) + " of ring fd " + ringFd;
        }
    }

    /**
     * Reserves {@code count} consecutive slots in the buffer table of the ring {@code registration} belongs to,
     * registering the table on first use. On that ring's loop.
     *
     * @param registration a registration with a Netty io_uring event loop, whose ring the slots belong to
     * @param count the slots, one per tag
     * @return the reservation
     * @throws UbdUnsupportedException when that ring has no table for us, or no room left in it, saying why
     */
    public static Reservation reserve(IoRegistration registration, int count) {
        if (!(registration.attachment() instanceof IoUringIoHandler handler)) {
            throw new UbdUnsupportedException(
                    "zero copy needs a Netty io_uring event loop; this registration's is " + registration.attachment());
        }
        synchronized (TABLES) {
            RingBufferTable table = TABLES.computeIfAbsent(handler, RingBufferTable::register);
            if (table.unusable != null) {
                throw new UbdUnsupportedException(table.unusable);
            }
            int base = table.findRun(count);
            if (base < 0) {
                throw new UbdUnsupportedException("the buffer table of ring fd " + table.ringFd + " has no " + count
                        + " free consecutive slots left (" + SLOTS + " in all, shared by the queues of one event "
                        + "loop): spread zero-copy queues over more loops");
            }
            table.used.set(base, base + count);
            return table.new Reservation(base, count);
        }
    }

    private int findRun(int count) {
        int from = 0;
        while (from + count <= SLOTS) {
            int start = used.nextClearBit(from);
            if (start + count > SLOTS) {
                return -1;
            }
            int end = used.nextSetBit(start);
            if (end < 0 || end - start >= count) {
                return start;
            }
            from = end;
        }
        return -1;
    }

    /** Registers a sparse table on the handler's ring; a table that says why when that cannot be done. */
    private static RingBufferTable register(IoUringIoHandler handler) {
        int fd;
        try {
            fd = NettyRing.fd(handler);
        } catch (IllegalStateException e) {
            return new RingBufferTable(-1, e.getMessage());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment reg = arena.allocate(IoUringAbi.RSRC_STRUCT_SIZE, 8); // struct io_uring_rsrc_register
            reg.set(ValueLayout.JAVA_INT, 0, SLOTS); // nr
            reg.set(ValueLayout.JAVA_INT, 4, IoUringAbi.RSRC_REGISTER_SPARSE); // flags
            int r = Libc.ioUringRegister(fd, IoUringAbi.REGISTER_BUFFERS2, reg.address(), IoUringAbi.RSRC_STRUCT_SIZE);
            if (r < 0) {
                return new RingBufferTable(
                        fd,
                        "cannot register a buffer table on Netty's io_uring ring (fd " + fd
                                + "): " + Errno.describe(r)
                                + (r == -Errno.EBUSY
                                        ? "; the application registered one of its "
                                                + "own on this event loop: give the device's queues loops of their own"
                                        : ""));
            }
        }
        return new RingBufferTable(fd, null);
    }

    /** Empties slots with a buffer update of empty iovecs. Best effort: a ring that is gone has no table either. */
    private void clear(int base, int count) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iovecs = arena.allocate(16L * count, 8); // zeroed struct iovec[count]: empty slots
            MemorySegment upd = arena.allocate(IoUringAbi.RSRC_STRUCT_SIZE, 8); // struct io_uring_rsrc_update2
            upd.set(ValueLayout.JAVA_INT, 0, base); // offset
            upd.set(ValueLayout.JAVA_LONG, 8, iovecs.address()); // data
            upd.set(ValueLayout.JAVA_INT, 24, count); // nr
            Libc.ioUringRegister(
                    ringFd, IoUringAbi.REGISTER_BUFFERS_UPDATE, upd.address(), IoUringAbi.RSRC_STRUCT_SIZE);
        }
    }
}

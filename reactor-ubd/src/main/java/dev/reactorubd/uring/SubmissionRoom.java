package dev.reactorubd.uring;

import io.netty.channel.IoRegistration;
import io.netty.channel.uring.IoUringIoHandler;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.VarHandle;

/**
 * How many more SQEs the submission queue of one Netty io_uring loop takes before Netty has to flush it to the kernel.
 *
 * <p>Two SQEs linked with {@code IOSQE_IO_LINK} must reach the kernel in the same {@code io_uring_enter}: when Netty
 * finds its queue full it submits what it holds before adding the next SQE, and the first of a pair submitted alone
 * runs unlinked (its link flag then dangles), while the second runs whenever it is submitted, not after the first.
 * Netty does not say how full its queue is, so this reads its private counters by reflection, as
 * {@link RingBufferTable} reads the ring's fd; where that cannot be done (another Netty, or a module layout that hides
 * the package), {@link #of} answers null and callers do not link.
 *
 * <p>Read it on the loop only: the counters are the loop thread's own plain fields.
 */
final class SubmissionRoom {
    private static final MethodHandle RING_BUFFER;
    private static final MethodHandle SUBMISSION_QUEUE;
    private static final VarHandle HEAD;
    private static final VarHandle TAIL;
    private static final VarHandle ENTRIES;
    /** Why the counters cannot be read, or null when they can. */
    private static final String UNAVAILABLE;

    static {
        MethodHandle ringBuffer = null;
        MethodHandle sq = null;
        VarHandle head = null;
        VarHandle tail = null;
        VarHandle entries = null;
        String why = null;
        try {
            MethodHandles.Lookup lookup = MethodHandles.lookup();
            MethodHandles.Lookup handler = MethodHandles.privateLookupIn(IoUringIoHandler.class, lookup);
            Class<?> ringClass = Class.forName("io.netty.channel.uring.RingBuffer");
            Class<?> sqClass = Class.forName("io.netty.channel.uring.SubmissionQueue");
            ringBuffer = handler.findGetter(IoUringIoHandler.class, "ringBuffer", ringClass);
            MethodHandles.Lookup ring = MethodHandles.privateLookupIn(ringClass, lookup);
            sq = ring.findVirtual(ringClass, "ioUringSubmissionQueue", MethodType.methodType(sqClass));
            MethodHandles.Lookup queue = MethodHandles.privateLookupIn(sqClass, lookup);
            head = queue.findVarHandle(sqClass, "head", int.class);
            tail = queue.findVarHandle(sqClass, "tail", int.class);
            entries = queue.findVarHandle(sqClass, "ringEntries", int.class);
        } catch (ReflectiveOperationException | RuntimeException e) {
            why = "cannot read the fill of Netty's submission queue (" + e + ")";
        }
        RING_BUFFER = ringBuffer;
        SUBMISSION_QUEUE = sq;
        HEAD = head;
        TAIL = tail;
        ENTRIES = entries;
        UNAVAILABLE = why;
    }

    private final Object queue;
    private final int entries;

    private SubmissionRoom(Object queue) {
        this.queue = queue;
        this.entries = (int) ENTRIES.get(queue);
    }

    /**
     * The room of the ring {@code registration} belongs to; on the loop.
     *
     * @param registration a registration with a Netty io_uring loop
     * @return its room, or null when it cannot be read (see the class comment)
     */
    static SubmissionRoom of(IoRegistration registration) {
        if (UNAVAILABLE != null || !(registration.attachment() instanceof IoUringIoHandler handler)) {
            return null;
        }
        try {
            return new SubmissionRoom(SUBMISSION_QUEUE.invoke(RING_BUFFER.invoke(handler)));
        } catch (Throwable e) {
            return null;
        }
    }

    /** {@return why no room can be read here, or null} */
    static String unavailable() {
        return UNAVAILABLE;
    }

    /** {@return the SQEs the queue takes before Netty flushes it} */
    int free() {
        return entries - ((int) TAIL.get(queue) - (int) HEAD.get(queue));
    }

    /** {@return the count of SQEs ever enqueued (Netty's tail), to tell whether a call enqueued one} */
    int tail() {
        return (int) TAIL.get(queue);
    }
}

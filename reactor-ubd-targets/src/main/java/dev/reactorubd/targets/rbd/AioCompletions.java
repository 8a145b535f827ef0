package dev.reactorubd.targets.rbd;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * librbd's asynchronous completions, answered by Java code. Each operation registers an {@link Aio} under a number,
 * which librbd hands back as the callback's argument; {@link #completed} (the upcall, on a librbd thread) reads the
 * result, releases the completion and calls the Aio. librbd runs an image's callbacks one at a time on its own
 * threads, so an Aio does nothing there but signal.
 */
final class AioCompletions {
    private static final Logger LOG = LoggerFactory.getLogger(AioCompletions.class);

    /** What an operation does with its result. */
    abstract static class Aio {
        /** The number its completion carries, set by {@link #create}. */
        private long id;

        /**
         * The operation finished. Called once, on a librbd thread; must not call back into librbd synchronously.
         *
         * @param result what {@code rbd_aio_get_return_value} answered: bytes read, 0, or {@code -errno}
         */
        abstract void completed(long result);
    }

    private static final ConcurrentHashMap<Long, Aio> PENDING = new ConcurrentHashMap<>();
    private static final AtomicLong NEXT = new AtomicLong(1);
    /** Per thread, the out-parameter of {@code rbd_aio_create_completion}. */
    private static final ThreadLocal<MemorySegment> OUT =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(ValueLayout.ADDRESS));

    private AioCompletions() {}

    /**
     * A new librbd completion whose callback calls {@code aio}.
     *
     * @param lib the bindings
     * @param aio what to do with the result
     * @return the completion, to pass to one {@code rbd_aio_*} call; on a failed submission, {@link #abandon} it
     */
    static MemorySegment create(Librbd lib, Aio aio) {
        long id = NEXT.getAndIncrement();
        aio.id = id;
        PENDING.put(id, aio);
        MemorySegment out = OUT.get();
        int rc;
        try {
            rc = (int) lib.aioCreateCompletion.invokeExact(MemorySegment.ofAddress(id), lib.completionStub(), out);
        } catch (Throwable t) {
            PENDING.remove(id);
            throw new IllegalStateException("rbd_aio_create_completion failed", t);
        }
        if (rc < 0) {
            PENDING.remove(id);
            throw new IllegalStateException("rbd_aio_create_completion answered " + rc);
        }
        return out.get(ValueLayout.ADDRESS, 0);
    }

    /**
     * Forgets a completion whose submission failed (librbd will not call it back) and releases it.
     *
     * @param lib the bindings
     * @param completion what {@link #create} returned
     * @param aio the operation it was made for
     */
    static void abandon(Librbd lib, MemorySegment completion, Aio aio) {
        PENDING.remove(aio.id, aio);
        try {
            lib.aioRelease.invokeExact(completion);
        } catch (Throwable t) {
            LOG.warn("rbd_aio_release of an unsubmitted completion failed", t);
        }
    }

    /** {@return operations submitted and not yet completed, in this process} */
    static int pending() {
        return PENDING.size();
    }

    /**
     * The upcall librbd makes when an operation completes: on a librbd thread, never throwing (an exception out of an
     * upcall ends the JVM).
     *
     * @param completion the librbd completion
     * @param arg the number {@link #create} gave it
     */
    static void completed(MemorySegment completion, MemorySegment arg) {
        try {
            Librbd lib = Librbd.get();
            long result = (long) lib.aioReturnValue.invokeExact(completion);
            lib.aioRelease.invokeExact(completion);
            Aio aio = PENDING.remove(arg.address());
            if (aio == null) {
                LOG.warn("librbd completed operation {}, which no one waits for", arg.address());
                return;
            }
            aio.completed(result);
        } catch (Throwable t) {
            LOG.error("an RBD completion's callback failed", t);
        }
    }
}

package dev.reactorubd.targets.rbd;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * librbd's header-update callbacks ({@code rbd_update_watch}), answered by Java code. librbd calls them on its own
 * single thread with no payload ("the header changed": a resize, a snapshot, a lock), and {@code rbd_update_unwatch}
 * waits for a callback under way, so a listener only records the news and hands the work to another thread.
 */
final class ImageWatch {
    private static final Logger LOG = LoggerFactory.getLogger(ImageWatch.class);
    private static final ConcurrentHashMap<Long, Runnable> LISTENERS = new ConcurrentHashMap<>();
    private static final AtomicLong NEXT = new AtomicLong(1);

    private ImageWatch() {}

    /**
     * Registers a listener and returns the number to pass to {@code rbd_update_watch} as its argument.
     *
     * @param listener called on librbd's thread for each header update; must return at once
     * @return the callback's argument
     */
    static long register(Runnable listener) {
        long id = NEXT.getAndIncrement();
        LISTENERS.put(id, listener);
        return id;
    }

    /**
     * Forgets a listener, after {@code rbd_update_unwatch} returned (or {@code rbd_update_watch} failed).
     *
     * @param id what {@link #register} returned
     */
    static void unregister(long id) {
        LISTENERS.remove(id);
    }

    /**
     * The upcall librbd makes on a header update: never throws (an exception out of an upcall ends the JVM).
     *
     * @param arg the number {@link #register} returned
     */
    static void updated(MemorySegment arg) {
        try {
            Runnable r = LISTENERS.get(arg.address());
            if (r != null) {
                r.run();
            }
        } catch (Throwable t) {
            LOG.error("an RBD header update's listener failed", t);
        }
    }
}

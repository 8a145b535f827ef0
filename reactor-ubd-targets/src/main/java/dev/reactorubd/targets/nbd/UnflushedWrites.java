package dev.reactorubd.targets.nbd;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Which acknowledged writes of one export a completed FLUSH has made durable, across all its connections (with
 * NBD_FLAG_CAN_MULTI_CONN a FLUSH on one connection covers the writes acknowledged on every other), and whether a
 * connection was lost while some were not: the export's next FLUSH must then fail, since a server that restarted
 * dropped its volatile cache. Thread-safe: each connection calls it from its own loop.
 */
final class UnflushedWrites {
    /** Acknowledged writes (not FUA) so far, every connection together: each ack's number is its place here. */
    private final AtomicLong acked = new AtomicLong();
    /** The highest ack number a completed FLUSH covers. */
    private final AtomicLong flushed = new AtomicLong();

    private final AtomicReference<String> loss = new AtomicReference<>();

    /** A write was acknowledged; returns its number, for the connection to remember as its latest. */
    long acknowledged() {
        return acked.incrementAndGet();
    }

    /** What a FLUSH sent now covers once it completes: every write acknowledged before it was sent. */
    long flushCovers() {
        return acked.get();
    }

    /** A FLUSH that covered writes up to {@code covers} completed. */
    void flushed(long covers) {
        flushed.accumulateAndGet(covers, Math::max);
    }

    /**
     * A connection whose latest acknowledged write is {@code latestAck} was lost: when that write is not covered by a
     * completed FLUSH, {@code reason} is kept for the next FLUSH. Returns whether it was.
     */
    boolean lost(long latestAck, String reason) {
        if (latestAck <= flushed.get()) {
            return false;
        }
        loss.set(reason);
        // Reported once: what was unflushed then is the next FLUSH's to fail; later writes start afresh.
        flushed(latestAck);
        return true;
    }

    /** Takes the reason a FLUSH about to be sent must fail for, or null when it may go. */
    String takeLoss() {
        return loss.getAndSet(null);
    }
}

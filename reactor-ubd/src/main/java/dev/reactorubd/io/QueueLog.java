package dev.reactorubd.io;

import dev.reactorubd.Errno;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A queue's WARN lines, each kind at most one a second, so that a backend failing every request cannot flood the
 * log: failed requests (the lines in between are counted and the count goes with the next one) and writes waiting for
 * memory. On the queue's loop only.
 */
final class QueueLog {
    private static final Logger LOG = LoggerFactory.getLogger(UbdQueue.class);
    private static final long INTERVAL_NANOS = 1_000_000_000L;
    private final int deviceId;
    private final int queueId;
    private long lastFailure;
    private int unloggedFailures;
    private long lastMemoryWait;

    QueueLog(int deviceId, int queueId) {
        this.deviceId = deviceId;
        this.queueId = queueId;
    }

    /** A request failed with {@code errno}; {@code why} is a Throwable, a String or null. */
    void failure(IoRequest r, int errno, Object why) {
        long now = System.nanoTime();
        if (lastFailure != 0 && now - lastFailure < INTERVAL_NANOS) {
            unloggedFailures++;
            return;
        }
        String reason = why instanceof Throwable t
                ? String.valueOf(t.getMessage() != null ? t.getMessage() : t)
                : why != null ? why.toString() : "failed";
        LOG.warn(
                "device {} queue {}: {} failed with {}: {}{}",
                deviceId,
                queueId,
                r != null ? r : "request",
                Errno.describe(-errno),
                reason,
                unloggedFailures > 0 ? " (" + unloggedFailures + " more failures not logged in the last second)" : "");
        lastFailure = now;
        unloggedFailures = 0;
    }

    /** A WRITE found no memory for its data and waits: the direct memory is too small for the load. */
    void memoryWait(IoRequest r, Throwable e, long waitedSoFar) {
        long now = System.nanoTime();
        if (lastMemoryWait != 0 && now - lastMemoryWait < INTERVAL_NANOS) {
            return;
        }
        lastMemoryWait = now;
        LOG.warn(
                "device {} queue {}: {} waits for a buffer for its data ({}); {} writes of this queue waited so far."
                        + " Direct memory should hold queues x depth x the largest request (docs/memory-pressure.md)",
                deviceId,
                queueId,
                r,
                e.toString(),
                waitedSoFar);
    }
}

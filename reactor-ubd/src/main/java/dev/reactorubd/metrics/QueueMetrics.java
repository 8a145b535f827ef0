package dev.reactorubd.metrics;

import dev.reactorubd.io.IoOp;

/**
 * The recorder of one queue's requests, called on the queue's event loop as each request is committed to the kernel.
 * Implementations must not block, and should not allocate per request: they run on the request path.
 *
 * <p>Latency is measured by the queue from the fetch completion (the kernel handing it the request) to the commit of
 * its result, with {@link System#nanoTime()}, and only when {@link #enabled()}.
 */
public interface QueueMetrics {
    /** Records nothing. */
    QueueMetrics NONE = new QueueMetrics() {
        @Override
        public boolean enabled() {
            return false;
        }

        @Override
        public void completed(IoOp op, int bytes, long latencyNanos) {
        }

        @Override
        public void failed(IoOp op, int errno, long latencyNanos) {
        }

        @Override
        public void close() {
        }
    };

    /** Whether this recorder wants requests timed and reported; the queue skips both when not. */
    default boolean enabled() {
        return true;
    }

    /** A request answered with success: {@code bytes} is its length (0 for FLUSH). */
    void completed(IoOp op, int bytes, long latencyNanos);

    /** A request failed with {@code errno} (positive: EIO, ENOSPC...). */
    void failed(IoOp op, int errno, long latencyNanos);

    /** The queue ended (its device was closed): release or unregister whatever this recorder holds. Idempotent. */
    void close();
}

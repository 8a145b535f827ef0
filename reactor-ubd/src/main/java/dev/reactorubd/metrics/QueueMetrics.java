package dev.reactorubd.metrics;

import dev.reactorubd.IoOp;

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
        public void completed(IoOp op, int bytes, long latencyNanos) {}

        @Override
        public void failed(IoOp op, int errno, long latencyNanos) {}

        @Override
        public void close() {}
    };

    /**
     * Whether this recorder wants requests timed and reported; the queue skips both when not.
     *
     * @return true unless this recorder drops everything
     */
    default boolean enabled() {
        return true;
    }

    /**
     * A request answered with success; called on the queue's loop.
     *
     * @param op           the operation
     * @param bytes        its length (0 for FLUSH)
     * @param latencyNanos from its fetch to its commit
     */
    void completed(IoOp op, int bytes, long latencyNanos);

    /**
     * A request failed; called on the queue's loop.
     *
     * @param op           the operation
     * @param errno        the positive errno it failed with (EIO, ENOSPC...)
     * @param latencyNanos from its fetch to its commit
     */
    void failed(IoOp op, int errno, long latencyNanos);

    /** The queue ended (its device was closed): release or unregister whatever this recorder holds. Idempotent. */
    void close();
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.server.BlockBackend;
import java.time.Duration;

/**
 * A {@link BlockBackend} with the composition operators as methods, each returning a new backend that wraps this
 * one and changes one thing (as nbdkit's filters do):
 *
 * <pre>{@code
 * MirrorBackend mirror = Backends.mirror(nbdA, nbdB);
 * BlockBackend device = mirror
 *         .cache(64 << 20)                          // a 64 MiB read cache
 *         .timeout(Duration.ofSeconds(5))           // a request not answered in 5 s fails with ETIMEDOUT
 *         .retry(3, Duration.ofMillis(100))         // up to 3 tries, 100 ms then 200 ms apart
 *         .limitRate(10_000, 0);                    // at most 10,000 requests per second
 * }</pre>
 *
 * <p>Operators apply from the inside out: above, the retry retries timed-out requests. Every operator is its own small
 * class ({@link MirrorBackend}, {@link StripeBackend}, {@link ConcatBackend}, {@link CacheBackend}, {@link
 * TimeoutBackend}, {@link RetryBackend}, {@link RateLimitBackend}, {@link FaultyBackend}); {@link Backends} makes the
 * ones made of several backends, and {@link Backends#from} makes any backend composable.
 *
 * <h2>Common rules</h2>
 * <ul>
 * <li><b>Threads</b>: like every backend, methods are called on a queue's event loop and return at once. A composed
 * backend is bound to each queue ({@link #bind}) by binding its parts; the bound view shares all state (mirror health,
 * cache contents, rate budget) with the backend it came from, and does its delayed work (retries, rate-limit waits,
 * failover reads) on that queue's loop. Unbound, delays run on {@code Schedulers.parallel()}.</li>
 * <li><b>Errors</b>: a part's error fails the request with that part's errno ({@code UbdIoException}), unless the
 * operator's job is to handle it (mirror, retry). Ranges beyond {@link #size()} fail with EINVAL.</li>
 * <li><b>Buffers</b>: read buffers are passed on or released on every path (errors, cancellation, timeouts); write
 * data is retained wherever an operator keeps it past the request.</li>
 * <li><b>Lifecycle</b>: {@link #close()} closes the parts; {@link #size()}, {@link #capabilities()} and
 * {@link #allocator()} come from the parts.</li>
 * </ul>
 */
public abstract class ComposableBackend implements BlockBackend {
    ComposableBackend() {}

    /**
     * A bounded, write-through read cache of {@code bytes} in front of this backend, in {@value
     * CacheBackend#DEFAULT_BLOCK}-byte blocks. See {@link CacheBackend}.
     *
     * @param bytes the most bytes cached
     * @return the cache, in front of this backend
     */
    public final CacheBackend cache(long bytes) {
        return new CacheBackend(this, bytes, CacheBackend.DEFAULT_BLOCK);
    }

    /**
     * A bounded, write-through read cache of {@code bytes} in blocks of {@code blockBytes}. See {@link CacheBackend}.
     *
     * @param bytes the most bytes cached
     * @param blockBytes the unit of caching, a positive multiple of 512
     * @return the cache, in front of this backend
     */
    public final CacheBackend cache(long bytes, int blockBytes) {
        return new CacheBackend(this, bytes, blockBytes);
    }

    /**
     * Fails a request not answered within {@code timeout} with ETIMEDOUT. See {@link TimeoutBackend}.
     *
     * @param timeout the bound on each request, positive
     * @return the timeout decorator, in front of this backend
     */
    public final TimeoutBackend timeout(Duration timeout) {
        return new TimeoutBackend(this, timeout);
    }

    /**
     * Tries a failed request again, up to {@code attempts} tries in all, waiting {@code backoff} before the second try
     * and doubling the wait each time, up to {@link RetryBackend#DEFAULT_MAX_BACKOFF}, each wait lengthened at random
     * by up to {@link RetryBackend#DEFAULT_JITTER} of itself. See {@link RetryBackend}.
     *
     * @param attempts the tries in all, the first included
     * @param backoff the wait before the second try
     * @return the retry decorator, in front of this backend
     */
    public final RetryBackend retry(int attempts, Duration backoff) {
        return retry(
                attempts,
                backoff,
                backoff.compareTo(RetryBackend.DEFAULT_MAX_BACKOFF) > 0 ? backoff : RetryBackend.DEFAULT_MAX_BACKOFF,
                RetryBackend.DEFAULT_JITTER);
    }

    /**
     * As {@link #retry(int, Duration)}, with the longest wait and the jitter given.
     *
     * @param attempts the tries in all, the first included
     * @param backoff the wait before the second try
     * @param maxBackoff the longest wait, at least {@code backoff}
     * @param jitter from 0 (waits exactly as computed) to 1 (up to twice as long)
     * @return the retry decorator, in front of this backend
     * @throws IllegalArgumentException for fewer than 1 attempt, a negative backoff, a longest wait below it, or a
     *     jitter outside 0 to 1
     */
    public final RetryBackend retry(int attempts, Duration backoff, Duration maxBackoff, double jitter) {
        return new RetryBackend(this, attempts, backoff, maxBackoff, jitter);
    }

    /**
     * Delays requests to stay within {@code iops} requests and {@code bytesPerSecond} bytes per second, shared by all
     * queues; 0 means unlimited. See {@link RateLimitBackend}.
     *
     * @param iops the most requests per second, or 0
     * @param bytesPerSecond the most bytes per second, or 0
     * @return the rate limiter, in front of this backend
     */
    public final RateLimitBackend limitRate(long iops, long bytesPerSecond) {
        return new RateLimitBackend(this, iops, bytesPerSecond);
    }

    /**
     * This backend behind a runtime switch that injects errors and delays. See {@link FaultyBackend}.
     *
     * @return the fault switch, in front of this backend
     */
    public final FaultyBackend faults() {
        return new FaultyBackend(this);
    }
}

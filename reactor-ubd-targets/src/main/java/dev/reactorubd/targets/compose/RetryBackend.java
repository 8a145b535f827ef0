package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.util.retry.Retry;

/**
 * Tries a failed request again. Made by {@link ComposableBackend#retry(int, Duration)} and {@link
 * ComposableBackend#retry(int, Duration, Duration, double)}; the waits are Reactor's {@link Retry#backoff}.
 *
 * <p><b>Behaviour</b>: a request is tried up to {@code attempts} times in all (the first try included). Before try
 * {@code k + 1} it waits {@code backoff x 2^(k-1)}, at most {@code maxBackoff}: backoff, then twice that, and so on,
 * each wait lengthened by up to {@code jitter} times itself at random (by default half), so that the requests of many
 * queues and devices that failed together do not all come back at the same moment. Errors that another try cannot fix
 * are not retried: EINVAL, EROFS, EOPNOTSUPP and ENOSPC. Every other error is, including ETIMEDOUT from a {@link
 * TimeoutBackend} below and errors that are not {@code UbdIoException}s (EIO).
 *
 * <p><b>Errors</b>: the last try's error, unchanged. <b>Buffers</b>: a write's data is retained from the first try until
 * the last one terminated, so every try sends the same bytes; failed reads carry no buffer.
 *
 * <p><b>Threads</b>: the waits run on the queue's loop when bound, and the next try is issued there (as a bound backend
 * needs); unbound, on {@code Schedulers.parallel()}. Retries are logged at DEBUG and counted by {@link #retries()}.
 */
public final class RetryBackend extends DecoratorBackend {
    private static final Logger log = LoggerFactory.getLogger(RetryBackend.class);
    /** The longest wait between two tries unless told otherwise. */
    public static final Duration DEFAULT_MAX_BACKOFF = Duration.ofSeconds(10);
    /** How much longer than its nominal length a wait may be made at random, unless told otherwise. */
    public static final double DEFAULT_JITTER = 0.5;

    private final int attempts;
    private final Duration backoff;
    private final Duration maxBackoff;
    private final double jitter;
    private final LongAdder retries;

    RetryBackend(BlockBackend delegate, int attempts, Duration backoff, Duration maxBackoff, double jitter) {
        super(delegate, null);
        if (attempts < 1) {
            throw new IllegalArgumentException("attempts must be at least 1; was " + attempts);
        }
        if (backoff == null || backoff.isNegative()) {
            throw new IllegalArgumentException("the backoff must not be negative; was " + backoff);
        }
        if (maxBackoff == null || maxBackoff.compareTo(backoff) < 0) {
            throw new IllegalArgumentException(
                    "the longest wait must be at least the first (" + backoff + "); was " + maxBackoff);
        }
        if (!(jitter >= 0 && jitter <= 1)) {
            throw new IllegalArgumentException("the jitter must be from 0 to 1; was " + jitter);
        }
        this.attempts = attempts;
        this.backoff = backoff;
        this.maxBackoff = maxBackoff;
        this.jitter = jitter;
        this.retries = new LongAdder();
    }

    private RetryBackend(RetryBackend from, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.attempts = from.attempts;
        this.backoff = from.backoff;
        this.maxBackoff = from.maxBackoff;
        this.jitter = from.jitter;
        this.retries = from.retries;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new RetryBackend(this, boundDelegate, queue.scheduler());
    }

    /**
     * Whether a request that failed with {@code errno} may succeed when tried again.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return whether a request that failed with {@code errno} may succeed when tried again
     */
    public static boolean retryable(int errno) {
        return errno != Errno.EINVAL && errno != Errno.EROFS && errno != Errno.EOPNOTSUPP && errno != Errno.ENOSPC;
    }

    /** {@return the retries so far: tries after the first (by this backend and its bound views)} */
    public long retries() {
        return retries.sum();
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return attempt(() -> delegate.read(offset, length, allocator), "read", offset);
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return Mono.defer(() -> {
            data.retain();
            return attempt(() -> delegate.write(offset, data, fua), "write", offset)
                    .doFinally(sig -> data.release());
        });
    }

    @Override
    public Mono<Void> flush() {
        return attempt(delegate::flush, "flush", 0);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return attempt(() -> delegate.discard(offset, length), "discard", offset);
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return attempt(() -> delegate.writeZeroes(offset, length, noUnmap), "write-zeroes", offset);
    }

    private <T> Mono<T> attempt(Supplier<Mono<T>> call, String op, long offset) {
        Mono<T> tries = Mono.defer(() -> Support.call(call));
        if (attempts == 1) {
            return tries;
        }
        return tries.retryWhen(Retry.backoff(attempts - 1, backoff)
                .maxBackoff(maxBackoff)
                .jitter(jitter)
                .scheduler(timers())
                .filter(e -> retryable(UbdIoException.errnoOf(e)))
                .doBeforeRetry(signal -> {
                    retries.increment();
                    if (log.isDebugEnabled()) {
                        log.debug(
                                "{} at {} on {} failed ({}); try {} of {}",
                                op,
                                offset,
                                delegate,
                                Support.describe(signal.failure()),
                                signal.totalRetries() + 2,
                                attempts);
                    }
                })
                // The caller sees the last try's error as it was, not Reactor's "retries exhausted".
                .onRetryExhaustedThrow((spec, signal) -> signal.failure()));
    }

    @Override
    public String toString() {
        return "retry(" + attempts + ", " + backoff + ", " + delegate + ")";
    }
}

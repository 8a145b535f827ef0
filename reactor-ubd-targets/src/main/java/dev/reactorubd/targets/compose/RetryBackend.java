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

/**
 * Tries a failed request again. Made by {@link ComposableBackend#retry(int, Duration)}.
 *
 * <p><b>Behaviour</b>: a request is tried up to {@code attempts} times in all (the first try included). Before try
 * {@code k + 1} it waits {@code backoff x 2^(k-1)}: backoff, then twice that, and so on. Errors that another try cannot
 * fix are not retried: EINVAL, EROFS, EOPNOTSUPP and ENOSPC. Every other error is, including ETIMEDOUT from a {@link
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
    private final int attempts;
    private final Duration backoff;
    private final LongAdder retries;

    RetryBackend(BlockBackend delegate, int attempts, Duration backoff) {
        super(delegate, null);
        if (attempts < 1) {
            throw new IllegalArgumentException("attempts must be at least 1; was " + attempts);
        }
        if (backoff == null || backoff.isNegative()) {
            throw new IllegalArgumentException("the backoff must not be negative; was " + backoff);
        }
        this.attempts = attempts;
        this.backoff = backoff;
        this.retries = new LongAdder();
    }

    private RetryBackend(RetryBackend from, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.attempts = from.attempts;
        this.backoff = from.backoff;
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
        return attempt(() -> delegate.read(offset, length, allocator), "read", offset, 1);
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return Mono.defer(() -> {
            data.retain();
            return attempt(() -> delegate.write(offset, data, fua), "write", offset, 1)
                    .doFinally(sig -> data.release());
        });
    }

    @Override
    public Mono<Void> flush() {
        return attempt(delegate::flush, "flush", 0, 1);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return attempt(() -> delegate.discard(offset, length), "discard", offset, 1);
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return attempt(() -> delegate.writeZeroes(offset, length, noUnmap), "write-zeroes", offset, 1);
    }

    private <T> Mono<T> attempt(Supplier<Mono<T>> call, String op, long offset, int n) {
        return Support.<T>call(call).onErrorResume(e -> {
            if (n >= attempts || !retryable(UbdIoException.errnoOf(e))) {
                return Mono.error(e);
            }
            Duration wait = backoff.multipliedBy(1L << Math.min(n - 1, 20));
            retries.increment();
            log.debug(
                    "{} at {} on {} failed ({}); try {} of {} in {}",
                    op,
                    offset,
                    delegate,
                    Support.describe(e),
                    n + 1,
                    attempts,
                    wait);
            return Mono.delay(wait, timers()).then(Mono.defer(() -> attempt(call, op, offset, n + 1)));
        });
    }

    @Override
    public String toString() {
        return "retry(" + attempts + ", " + backoff + ", " + delegate + ")";
    }
}

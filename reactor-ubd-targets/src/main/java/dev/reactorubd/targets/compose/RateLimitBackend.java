package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * Keeps requests within a budget of requests per second and bytes per second, shared by every queue. Made by {@link
 * ComposableBackend#limitRate(long, long)}.
 *
 * <p><b>Behaviour</b>: two token buckets, one counting requests and one counting bytes (READ and WRITE data; FLUSH,
 * DISCARD and WRITE_ZEROES move no data and cost only a request). Each bucket holds {@value #BURST_MILLIS} ms of its
 * rate: an idle device passes that much at once, and beyond it requests are spaced at the rate. A request that
 * finds a bucket short waits until the bucket has refilled, in arrival order of reservation; it is delayed, never
 * dropped or failed. A request larger than a bucket still passes once the requests before it are paid for (it takes
 * its bytes as debt that later requests wait for), so no size is ever refused. A rate of 0 means unlimited.
 *
 * <p><b>Threads</b>: the buckets are atomics shared by this backend and its bound views; a delayed request waits on
 * the queue's loop when bound (and is issued there), else on {@code Schedulers.parallel()}. {@link #delayed()}
 * counts requests that waited.
 */
public final class RateLimitBackend extends DecoratorBackend {
    /** How much of each rate a bucket holds: a burst that passes without waiting. */
    public static final long BURST_MILLIS = 100;

    private final Budget budget;

    RateLimitBackend(BlockBackend delegate, long iops, long bytesPerSecond) {
        super(delegate, null);
        if (iops < 0 || bytesPerSecond < 0) {
            throw new IllegalArgumentException("rates must not be negative; were " + iops + " and " + bytesPerSecond);
        }
        this.budget = new Budget(iops, bytesPerSecond);
    }

    private RateLimitBackend(Budget budget, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.budget = budget;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new RateLimitBackend(budget, boundDelegate, queue.scheduler());
    }

    /** {@return requests that had to wait for the budget so far} */
    public long delayed() {
        return budget.delayed.sum();
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return paced(length, () -> delegate.read(offset, length, allocator));
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return paced(data.readableBytes(), () -> delegate.write(offset, data, fua));
    }

    @Override
    public Mono<Void> flush() {
        return paced(0, delegate::flush);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return paced(0, () -> delegate.discard(offset, length));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return paced(0, () -> delegate.writeZeroes(offset, length, noUnmap));
    }

    private <T> Mono<T> paced(long bytes, Supplier<Mono<T>> call) {
        return Mono.defer(() -> {
            long wait = budget.reserve(bytes);
            if (wait <= 0) {
                return Support.call(call);
            }
            budget.delayed.increment();
            return Mono.delay(Duration.ofNanos(wait), timers()).then(Mono.defer(() -> Support.call(call)));
        });
    }

    @Override
    public String toString() {
        return "limitRate(" + budget.iops + " iops, " + budget.bytesPerSecond + " B/s, " + delegate + ")";
    }

    /** The two buckets, as theoretical arrival times (GCRA): when each bucket will be full again, in nanoTime. */
    private static final class Budget {
        private static final long BURST = TimeUnit.MILLISECONDS.toNanos(BURST_MILLIS);
        final long iops;
        final long bytesPerSecond;
        final AtomicLong requestsFull = new AtomicLong(Long.MIN_VALUE / 4);
        final AtomicLong bytesFull = new AtomicLong(Long.MIN_VALUE / 4);
        final LongAdder delayed = new LongAdder();

        Budget(long iops, long bytesPerSecond) {
            this.iops = iops;
            this.bytesPerSecond = bytesPerSecond;
        }

        /** Takes one request of {@code bytes} from the buckets; the nanoseconds to wait before issuing it. */
        long reserve(long bytes) {
            long now = System.nanoTime();
            long wait = 0;
            if (iops > 0) {
                wait = take(requestsFull, now, (long) (1e9 / iops));
            }
            if (bytesPerSecond > 0 && bytes > 0) {
                wait = Math.max(wait, take(bytesFull, now, (long) (bytes * 1e9 / bytesPerSecond)));
            }
            return wait;
        }

        private static long take(AtomicLong full, long now, long cost) {
            while (true) {
                long old = full.get();
                long start = Math.max(now, old - BURST);
                long next = Math.max(old, start) + cost;
                if (full.compareAndSet(old, next)) {
                    return start - now;
                }
            }
        }
    }
}

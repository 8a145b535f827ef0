package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * Injects errors and delays at run time, for tests (nbdkit's error filter). Made by {@link
 * ComposableBackend#faults()}; passes everything through until a fault is switched on.
 *
 * <pre>{@code
 * FaultyBackend b = Backends.from(new MemoryBackend(size)).faults();
 * b.failWrites(Errno.EIO);          // every WRITE, DISCARD, WRITE_ZEROES and FLUSH fails with EIO
 * b.heal();                         // back to normal
 * b.failRange(1 << 20, 4096, Errno.EIO).failEvery(10, Errno.ETIMEDOUT);
 * }</pre>
 *
 * <p><b>Faults</b> (switches combine; each setter returns this backend): {@link #failReads}, {@link #failWrites}
 * (WRITE, DISCARD, WRITE_ZEROES and FLUSH), {@link #failAll}, {@link #failEvery} (every n-th request of any kind,
 * counted from when it was switched on), {@link #failRange} (READ, WRITE, DISCARD and WRITE_ZEROES touching a byte
 * range), and {@link #delay} (every request, failing or not, answered that much later). {@link #heal()} switches
 * everything off. A failing request does not reach the backend.
 *
 * <p><b>Errors</b>: an injected fault is a {@code UbdIoException} with the errno given. <b>Threads</b>: the switches
 * are one atomic reference, shared with every bound view and safe to flip from any thread while IO runs; a request
 * sees the switches as they are when it is called. Delays run on the queue's loop when bound, else on {@code
 * Schedulers.parallel()}.
 */
public final class FaultyBackend extends DecoratorBackend {
    private final Switches switches;

    FaultyBackend(BlockBackend delegate) {
        super(delegate, null);
        this.switches = new Switches();
    }

    private FaultyBackend(Switches switches, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.switches = switches;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new FaultyBackend(switches, boundDelegate, queue.scheduler());
    }

    /**
     * Fails every READ with {@code errno}.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return this backend, for chaining
     */
    public FaultyBackend failReads(int errno) {
        check(errno);
        return set(r -> r.with(errno, r.writeErrno));
    }

    /**
     * Fails every WRITE, DISCARD, WRITE_ZEROES and FLUSH with {@code errno}.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return this backend, for chaining
     */
    public FaultyBackend failWrites(int errno) {
        check(errno);
        return set(r -> r.with(r.readErrno, errno));
    }

    /**
     * Fails every request with {@code errno}.
     *
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return this backend, for chaining
     */
    public FaultyBackend failAll(int errno) {
        check(errno);
        return set(r -> r.with(errno, errno));
    }

    /**
     * Fails every {@code n}-th request (of any kind, counted from now) with {@code errno}.
     *
     * @param n the period, positive: 1 fails every request
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return this backend, for chaining
     */
    public FaultyBackend failEvery(int n, int errno) {
        check(errno);
        if (n < 1) {
            throw new IllegalArgumentException("n must be at least 1; was " + n);
        }
        return set(r -> new Rules(
                r.readErrno,
                r.writeErrno,
                n,
                errno,
                new AtomicLong(),
                r.rangeStart,
                r.rangeEnd,
                r.rangeErrno,
                r.delay));
    }

    /**
     * Fails every request but FLUSH that touches {@code [offset, offset + length)} with {@code errno}.
     *
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @param errno the positive errno, such as {@code Errno.EIO}
     * @return this backend, for chaining
     */
    public FaultyBackend failRange(long offset, long length, int errno) {
        check(errno);
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("bad range " + offset + "+" + length);
        }
        return set(r -> new Rules(
                r.readErrno, r.writeErrno, r.every, r.everyErrno, r.counter, offset, offset + length, errno, r.delay));
    }

    /**
     * Answers every request {@code delay} later than the backend would (Duration.ZERO: no delay).
     *
     * @param delay the added delay, or {@code Duration.ZERO}
     * @return this backend, for chaining
     */
    public FaultyBackend delay(Duration delay) {
        if (delay == null || delay.isNegative()) {
            throw new IllegalArgumentException("the delay must not be negative; was " + delay);
        }
        return set(r -> new Rules(
                r.readErrno,
                r.writeErrno,
                r.every,
                r.everyErrno,
                r.counter,
                r.rangeStart,
                r.rangeEnd,
                r.rangeErrno,
                delay));
    }

    /**
     * Switches every fault and delay off.
     *
     * @return this backend, for chaining
     */
    public FaultyBackend heal() {
        return set(r -> Rules.NONE);
    }

    /** {@return requests failed by a fault so far} */
    public long injected() {
        return switches.injected.get();
    }

    /** {@return requests seen so far, failed or not} */
    public long requests() {
        return switches.requests.get();
    }

    private static void check(int errno) {
        if (errno <= 0) {
            throw new IllegalArgumentException("an errno is positive; was " + errno);
        }
    }

    private FaultyBackend set(UnaryOperator<Rules> change) {
        switches.rules.updateAndGet(change);
        return this;
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return guard(true, offset, length, () -> delegate.read(offset, length, allocator), "read");
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return guard(false, offset, data.readableBytes(), () -> delegate.write(offset, data, fua), "write");
    }

    @Override
    public Mono<Void> flush() {
        return guard(false, -1, 0, delegate::flush, "flush");
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return guard(false, offset, length, () -> delegate.discard(offset, length), "discard");
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return guard(false, offset, length, () -> delegate.writeZeroes(offset, length, noUnmap), "write-zeroes");
    }

    private <T> Mono<T> guard(boolean read, long offset, long length, Supplier<Mono<T>> call, String op) {
        return Mono.defer(() -> {
            Rules r = switches.rules.get();
            switches.requests.incrementAndGet();
            int errno = r.errnoFor(read, offset, length);
            Mono<T> answer;
            if (errno != 0) {
                switches.injected.incrementAndGet();
                answer = Mono.error(Support.ioError(
                        errno, "injected fault: " + op + " at " + offset + "+" + length + " of " + delegate));
            } else {
                answer = Mono.defer(() -> Support.call(call));
            }
            return r.delay.isZero() ? answer : Mono.delay(r.delay, timers()).then(answer);
        });
    }

    @Override
    public String toString() {
        return "faults(" + delegate + ")";
    }

    private static final class Switches {
        final AtomicReference<Rules> rules = new AtomicReference<>(Rules.NONE);
        final AtomicLong requests = new AtomicLong();
        final AtomicLong injected = new AtomicLong();
    }

    /** The switches, immutable but for the every-n-th counter. */
    private record Rules(
            int readErrno,
            int writeErrno,
            long every,
            int everyErrno,
            AtomicLong counter,
            long rangeStart,
            long rangeEnd,
            int rangeErrno,
            Duration delay) {
        static final Rules NONE = new Rules(0, 0, 0, 0, new AtomicLong(), 0, 0, 0, Duration.ZERO);

        Rules with(int read, int write) {
            return new Rules(read, write, every, everyErrno, counter, rangeStart, rangeEnd, rangeErrno, delay);
        }

        int errnoFor(boolean read, long offset, long length) {
            int e = read ? readErrno : writeErrno;
            if (e != 0) {
                return e;
            }
            if (rangeErrno != 0 && offset >= 0 && offset < rangeEnd && offset + length > rangeStart) {
                return rangeErrno;
            }
            if (every > 0 && counter.incrementAndGet() % every == 0) {
                return everyErrno;
            }
            return 0;
        }
    }
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.reactivestreams.Subscription;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.CoreSubscriber;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.scheduler.Scheduler;

/**
 * Fails a request that the backend did not answer within a time limit. Made by {@link
 * ComposableBackend#timeout(Duration)}.
 *
 * <p><b>Errors</b>: a late request fails with {@code ETIMEDOUT} (a {@code UbdIoException}; the kernel reports it to
 * the reader or writer as a timeout), counted by {@link #timedOut()}. The backend's own errors pass through.
 *
 * <p><b>The late answer</b>: the backend's Mono is not cancelled at the deadline (a cancelled write may still be under
 * way, and a cancelled read may still deliver its buffer); it is left to finish. A read buffer that arrives after the
 * deadline is released at once; a write's data is retained from the call until the backend's Mono terminates, so it
 * stays valid for the backend even though the request was already answered. A cancellation from downstream does
 * cancel the backend's Mono.
 *
 * <p><b>Threads</b>: the deadline runs on the queue's loop when bound, else on {@code Schedulers.parallel()} (so
 * {@code StepVerifier.withVirtualTime} drives it for an unbound backend).
 */
public final class TimeoutBackend extends DecoratorBackend {
    private static final Logger log = LoggerFactory.getLogger(TimeoutBackend.class);
    private final Duration timeout;
    private final LongAdder timedOut;

    TimeoutBackend(BlockBackend delegate, Duration timeout) {
        super(delegate, null);
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the timeout must be positive; was " + timeout);
        }
        this.timeout = timeout;
        this.timedOut = new LongAdder();
    }

    private TimeoutBackend(TimeoutBackend from, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.timeout = from.timeout;
        this.timedOut = from.timedOut;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new TimeoutBackend(this, boundDelegate, queue.scheduler());
    }

    /** {@return requests failed with ETIMEDOUT so far (by this backend and its bound views)} */
    public long timedOut() {
        return timedOut.sum();
    }

    /** {@return the time limit} */
    public Duration limit() {
        return timeout;
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return within(() -> delegate.read(offset, length, allocator), null, "read", offset, length);
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return within(() -> delegate.write(offset, data, fua), data, "write", offset, data.readableBytes());
    }

    @Override
    public Mono<Void> flush() {
        return within(delegate::flush, null, "flush", 0, 0);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return within(() -> delegate.discard(offset, length), null, "discard", offset, length);
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return within(() -> delegate.writeZeroes(offset, length, noUnmap), null, "write-zeroes", offset, length);
    }

    private <T> Mono<T> within(Supplier<Mono<T>> call, ByteBuf keep, String op, long offset, long length) {
        return Mono.create(sink -> new Deadline<T>(sink, keep, op, offset, length).start(call));
    }

    @Override
    public String toString() {
        return "timeout(" + timeout + ", " + delegate + ")";
    }

    /** One request against its deadline: whichever of answer and deadline comes first answers it. */
    private final class Deadline<T> implements CoreSubscriber<T> {
        final MonoSink<T> sink;
        final ByteBuf keep;
        final String op;
        final long offset;
        final long length;
        final AtomicBoolean answered = new AtomicBoolean();
        final AtomicBoolean released = new AtomicBoolean();
        volatile Subscription upstream;
        volatile Disposable timer;

        Deadline(MonoSink<T> sink, ByteBuf keep, String op, long offset, long length) {
            this.sink = sink;
            this.keep = keep;
            this.op = op;
            this.offset = offset;
            this.length = length;
        }

        void start(Supplier<Mono<T>> call) {
            if (keep != null) {
                keep.retain();
            }
            sink.onCancel(this::cancel);
            Scheduler timers = timers();
            try {
                timer = timers.schedule(this::expire, timeout.toNanos(), TimeUnit.NANOSECONDS);
            } catch (RejectedExecutionException e) {
                releaseKept();
                answered.set(true);
                sink.error(e);
                return;
            }
            Support.call(call).subscribe(this);
        }

        private void releaseKept() {
            if (keep != null && released.compareAndSet(false, true)) {
                keep.release();
            }
        }

        private void stopTimer() {
            Disposable t = timer;
            if (t != null) {
                t.dispose();
            }
        }

        void expire() {
            if (answered.compareAndSet(false, true)) {
                timedOut.increment();
                log.debug("{} of {}+{} on {} timed out after {}", op, offset, length, delegate, timeout);
                sink.error(Support.ioError(
                        Errno.ETIMEDOUT,
                        op + " of " + offset + "+" + length + " was not answered" + " within " + timeout));
            }
        }

        void cancel() {
            if (answered.compareAndSet(false, true)) {
                stopTimer();
                Subscription s = upstream;
                if (s != null) {
                    s.cancel();
                }
                releaseKept();
            }
        }

        @Override
        public void onSubscribe(Subscription s) {
            upstream = s;
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(T value) {
            if (answered.compareAndSet(false, true)) {
                stopTimer();
                sink.success(value);
            } else {
                // Too late: the request was answered with ETIMEDOUT (or cancelled); nobody takes this buffer.
                ReferenceCountUtil.release(value);
            }
        }

        @Override
        public void onError(Throwable error) {
            releaseKept();
            if (answered.compareAndSet(false, true)) {
                stopTimer();
                sink.error(error);
            }
        }

        @Override
        public void onComplete() {
            releaseKept();
            if (answered.compareAndSet(false, true)) {
                stopTimer();
                sink.success();
            }
        }
    }
}

package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.IoRequest;
import dev.reactorubd.io.UbdQueue;
import io.netty.buffer.ByteBuf;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.ReferenceCounted;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.AtomicReferenceFieldUpdater;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.Disposable;
import reactor.core.Fuseable;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Operators;
import reactor.core.publisher.SignalType;
import reactor.util.context.Context;

/**
 * Wires a queue's requests to a {@link BlockBackend}: at most depth requests in the backend at once, each answered
 * from its Mono. The same code serves kernel queues and the test kit's virtual device.
 *
 * <p>It is on every request's path, so it stays lean: one subscriber to the queue that asks for depth requests and
 * one more per answer, and one small subscriber per backend Mono, instead of a general-purpose operator chain. A Mono
 * whose outcome is known when it is made ({@code Mono.just}, {@code Mono.empty}, {@code Mono.error}: Reactor's
 * {@link Fuseable.ScalarCallable}) is read at once, with no subscriber, and the queue reuses one request object per
 * tag ({@link UbdQueue#recycleRequests}): a backend that answers so serves requests without allocating.
 */
public final class BackendBridge {
    /**
     * How long a backend may take to answer a request before the request fails with ETIMEDOUT: 30 s, the block
     * layer's own default request timeout.
     */
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(30);

    private BackendBridge() {}

    /**
     * {@link #attachAll(List, BlockBackend, Duration)} with the {@link #DEFAULT_REQUEST_TIMEOUT}.
     *
     * @param queues the device's queues, not yet subscribed to
     * @param backend the backend that answers the requests
     * @return a Flux of one Disposable per queue, which detaches the backend from it
     */
    public static Flux<Disposable> attachAll(List<UbdQueue> queues, BlockBackend backend) {
        return attachAll(queues, backend, DEFAULT_REQUEST_TIMEOUT);
    }

    /**
     * Binds {@code backend} to each queue ({@link BlockBackend#bind}) and attaches what it returns, in queue order.
     * Signals each attachment's Disposable; an error from a bind ends the Flux with it.
     *
     * @param queues the device's queues, not yet subscribed to
     * @param backend the backend that answers the requests
     * @param requestTimeout how long a request may wait for its answer (see {@link #attach(UbdQueue, BlockBackend,
     *                       Duration)})
     * @return a Flux of one Disposable per queue, which detaches the backend from it
     */
    public static Flux<Disposable> attachAll(List<UbdQueue> queues, BlockBackend backend, Duration requestTimeout) {
        return Flux.fromIterable(queues)
                .concatMap(q -> backend.bind(q)
                        .switchIfEmpty(Mono.error(() -> new IllegalStateException(backend + " bound nothing to " + q)))
                        .map(bound -> attach(q, bound, requestTimeout)));
    }

    /**
     * Subscribes to {@code queue}'s requests and serves them from {@code backend} until the queue ends: at most depth
     * requests in the backend at once, one more asked for each one answered.
     *
     * <p>A request the backend has not answered within {@code requestTimeout} fails with ETIMEDOUT (checked a few
     * times per timeout period on the queue's loop, so it fails between 1 and 1.25 times the timeout), and the
     * backend's Mono is cancelled: a backend stops serving a cancelled request (see {@link BlockBackend}), and what it
     * signals anyway is dropped, a read's buffer released. A request served in place is committed only once no
     * operation naming its registered pages is left in flight. {@link Duration#ZERO} waits forever.
     *
     * @param queue the queue, not yet subscribed to
     * @param backend the backend that answers the requests, called on the queue's loop
     * @param requestTimeout how long a request may wait for its answer
     * @return the subscription; disposing it cancels the queue's Flux (waiting requests then fail with EIO)
     */
    public static Disposable attach(UbdQueue queue, BlockBackend backend, Duration requestTimeout) {
        if (requestTimeout.isNegative()) {
            throw new IllegalArgumentException("requestTimeout must not be negative; was " + requestTimeout);
        }
        // Requests with registered pages reach a zero-copy backend as they are; any other backend gets copies.
        if (backend instanceof ZeroCopyBackend z) {
            queue.serveInPlace(z.servesInPlace(IoOp.READ), z.servesInPlace(IoOp.WRITE));
        } else {
            queue.serveInPlace(false);
        }
        // This bridge answers each request once (Answer's DONE flag) and keeps none once answered.
        queue.recycleRequests(true);
        // A WRITE that finds no memory for its data waits for it as long as its answer may take, and no longer.
        queue.writeBufferWait(requestTimeout);
        QueueSubscriber s = new QueueSubscriber(backend, queue, requestTimeout);
        queue.requests().subscribe(s);
        return s;
    }

    /**
     * {@link #attach(UbdQueue, BlockBackend, Duration)} with the {@link #DEFAULT_REQUEST_TIMEOUT}.
     *
     * @param queue the queue, not yet subscribed to
     * @param backend the backend that answers the requests
     * @return the subscription
     */
    public static Disposable attach(UbdQueue queue, BlockBackend backend) {
        return attach(queue, backend, DEFAULT_REQUEST_TIMEOUT);
    }

    /**
     * Serves one request; {@code done} runs once it was answered, whichever way. An exception thrown by the backend, an
     * error signal, or an empty or wrong-length read fails the request (EIO, or the errno of a {@link
     * dev.reactorubd.UbdIoException}).
     *
     * @param backend the backend that answers the request
     * @param r the request, not yet answered
     * @param done run once the request is answered
     */
    public static void serve(BlockBackend backend, IoRequest r, Runnable done) {
        Mono<?> pending = callOrAnswer(backend, r);
        if (pending == null) {
            done.run();
        } else {
            pending.subscribe(new Answer(r, done, null));
        }
    }

    /**
     * Calls the backend for {@code r}. Answers {@code r} at once, and returns null, when the call throws or returns a
     * Mono whose outcome is known when it is made ({@code Mono.just}, {@code Mono.empty}, {@code Mono.error}:
     * Reactor's {@link Fuseable.ScalarCallable}), so that such answers need no subscriber; otherwise returns the Mono
     * to subscribe an {@link Answer} to.
     */
    private static Mono<?> callOrAnswer(BlockBackend backend, IoRequest r) {
        Mono<?> call;
        try {
            call = call(backend, r);
        } catch (Throwable e) {
            answerError(r, e);
            return null;
        }
        if (!(call instanceof Fuseable.ScalarCallable<?> known)) {
            return call;
        }
        Object value;
        try {
            value = known.call();
        } catch (Throwable e) {
            answerError(r, e);
            return null;
        }
        if (value != null) {
            answerValue(r, value);
        } else {
            answerEmpty(r);
        }
        return null;
    }

    /** Answers with the value a backend's Mono signalled: a READ's data, or a value the other operations drop. */
    private static void answerValue(IoRequest r, Object value) {
        if (r.op() == IoOp.READ && value instanceof ByteBuf data) {
            r.complete(data);
        } else {
            ReferenceCountUtil.release(value);
            r.complete();
        }
    }

    /** Answers for a backend's Mono that completed empty: fine, except for a READ that was not served in place. */
    private static void answerEmpty(IoRequest r) {
        if (r.op() == IoOp.READ && r.registeredBuffer() < 0) {
            r.fail(new UbdIoException(Errno.EIO, "the backend's read of " + r + " completed without data"));
        } else {
            r.complete();
        }
    }

    private static Mono<?> call(BlockBackend backend, IoRequest r) {
        return switch (r.op()) {
            // A registered buffer is only ever handed to a ZeroCopyBackend: see attach.
            case READ ->
                r.registeredBuffer() >= 0
                        ? ((ZeroCopyBackend) backend)
                                .readInto(r.offset(), r.length(), r.registeredBuffer(), r.linkedCommit())
                        : backend.read(r.offset(), r.length(), r.queue().allocator());
            case WRITE ->
                r.registeredBuffer() >= 0
                        ? ((ZeroCopyBackend) backend)
                                .writeFrom(r.offset(), r.length(), r.registeredBuffer(), r.fua(), r.linkedCommit())
                        : backend.write(r.offset(), r.data(), r.fua());
            case FLUSH -> backend.flush();
            case DISCARD -> backend.discard(r.offset(), r.length());
            case WRITE_ZEROES -> backend.writeZeroes(r.offset(), r.length(), r.noUnmap());
            default -> Mono.error(new UbdIoException(Errno.EOPNOTSUPP, r.op() + " is not served"));
        };
    }

    private static void answerError(IoRequest r, Throwable e) {
        if (!r.isAnswered()) {
            r.fail(e);
        }
    }

    /**
     * Asks the queue for depth requests, then one more for each request answered; fails the requests its backend
     * does not answer in time.
     */
    private static final class QueueSubscriber extends BaseSubscriber<IoRequest> {
        /**
         * Dropped when the subscription ends: Reactor's unicast sink keeps its subscriber after it terminated, so the
         * queue (and a closed device's handle, through it) would otherwise keep the backend, and all its data,
         * reachable for as long as the application keeps the handle.
         */
        private volatile BlockBackend backend;

        private final UbdQueue queue;
        private final long timeoutNanos;
        /** The answer each tag waits for; written from whichever thread emits or answers, swept on the loop. */
        private final AtomicReferenceArray<Answer> waiting;

        private final Runnable requestOne = () -> request(1);
        private volatile ScheduledFuture<?> sweeper;

        QueueSubscriber(BlockBackend backend, UbdQueue queue, Duration timeout) {
            this.backend = backend;
            this.queue = queue;
            this.timeoutNanos = timeout.toNanos();
            this.waiting = new AtomicReferenceArray<>(queue.depth());
        }

        @Override
        protected void hookOnSubscribe(Subscription subscription) {
            if (timeoutNanos > 0) {
                long period = Math.max(1, TimeUnit.NANOSECONDS.toMillis(timeoutNanos) / 4);
                try {
                    sweeper = queue.loop().scheduleAtFixedRate(this::sweep, period, period, TimeUnit.MILLISECONDS);
                } catch (RejectedExecutionException e) {
                    // The loop is shutting down: so is the queue, and nothing waits long.
                }
            }
            subscription.request(queue.depth());
        }

        @Override
        protected void hookOnNext(IoRequest r) {
            BlockBackend b = backend;
            Mono<?> pending;
            if (b == null) {
                answerError(r, new UbdIoException(Errno.EIO, "the backend was detached from " + queue));
                pending = null;
            } else {
                pending = callOrAnswer(b, r);
            }
            if (pending == null) {
                request(1);
                return;
            }
            Answer a = new Answer(r, requestOne, timeoutNanos > 0 ? this : null);
            if (timeoutNanos > 0) {
                a.started = System.nanoTime();
                waiting.set(r.tag(), a);
            }
            pending.subscribe(a);
        }

        void answered(Answer a) {
            waiting.compareAndSet(a.r.tag(), a, null);
        }

        /** On the loop: fails every request whose backend has not answered within the timeout. */
        private void sweep() {
            long now = System.nanoTime();
            for (int tag = 0; tag < waiting.length(); tag++) {
                Answer a = waiting.get(tag);
                if (a != null && now - a.started > timeoutNanos) {
                    a.timeOut(backend, Duration.ofNanos(timeoutNanos));
                }
            }
        }

        @Override
        protected void hookOnError(Throwable error) {
            // The queue's own failure (its transport ended); the device reports it.
        }

        @Override
        protected void hookFinally(SignalType type) {
            ScheduledFuture<?> f = sweeper;
            if (f != null) {
                f.cancel(false);
            }
            backend = null;
        }
    }

    /** Answers one request from the backend's Mono: its value (READ data), its completion, or its error. */
    private static final class Answer implements CoreSubscriber<Object> {
        private static final AtomicIntegerFieldUpdater<Answer> DONE =
                AtomicIntegerFieldUpdater.newUpdater(Answer.class, "done");
        private static final AtomicReferenceFieldUpdater<Answer, Subscription> SUBSCRIPTION =
                AtomicReferenceFieldUpdater.newUpdater(Answer.class, Subscription.class, "subscription");
        /** Released once: a backend's own discard hook (the file target's) may have released it already. */
        private static final Context RELEASE_DISCARDED = Operators.enableOnDiscard(Context.empty(), o -> {
            if (o instanceof ReferenceCounted rc && rc.refCnt() > 0) {
                rc.release();
            }
        });
        /** Stands for a subscription cancelled before it arrived. */
        private static final Subscription CANCELLED = new Subscription() {
            @Override
            public void request(long n) {}

            @Override
            public void cancel() {}
        };

        final IoRequest r;
        private final Runnable onAnswered;
        private volatile Subscription subscription;
        private final QueueSubscriber watcher;
        long started;
        private volatile int done;

        Answer(IoRequest r, Runnable onAnswered, QueueSubscriber watcher) {
            this.r = r;
            this.onAnswered = onAnswered;
            this.watcher = watcher;
        }

        /**
         * Answers for the backend: ETIMEDOUT, and cancels the backend's Mono, so that nothing of the request reaches
         * the store any more (no retry, no re-send after a reconnect, no rest of a transfer). What the backend
         * signals anyway is dropped (see onNext).
         */
        void timeOut(BlockBackend backend, Duration timeout) {
            if (DONE.compareAndSet(this, 0, 1)) {
                // Cancelled first: a backend that hears of it before the answer stops before the tag is reused.
                cancelUpstream();
                answerError(
                        r,
                        new UbdIoException(Errno.ETIMEDOUT, backend + " did not answer " + r + " within " + timeout));
                answered();
            }
        }

        private void cancelUpstream() {
            Subscription s = SUBSCRIPTION.getAndSet(this, CANCELLED);
            if (s != null && s != CANCELLED) {
                s.cancel();
            }
        }

        private void answered() {
            if (watcher != null) {
                watcher.answered(this);
            }
            onAnswered.run();
        }

        /**
         * Buffers the backend's chain drops (Reactor's discard hook) are released: among them a read's buffer that
         * its backend signalled after the request was cancelled, which would otherwise leak.
         */
        @Override
        public Context currentContext() {
            return RELEASE_DISCARDED;
        }

        @Override
        public void onSubscribe(Subscription s) {
            if (!SUBSCRIPTION.compareAndSet(this, null, s)) {
                s.cancel(); // timed out before the backend's Mono even subscribed
                return;
            }
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(Object value) {
            if (!DONE.compareAndSet(this, 0, 1)) {
                ReferenceCountUtil.release(value);
                return;
            }
            answerValue(r, value);
            answered();
        }

        @Override
        public void onError(Throwable error) {
            if (DONE.compareAndSet(this, 0, 1)) {
                answerError(r, error);
                answered();
            }
        }

        @Override
        public void onComplete() {
            if (DONE.compareAndSet(this, 0, 1)) {
                answerEmpty(r);
                answered();
            }
        }
    }
}

package dev.reactorubd.server;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.IoOp;
import dev.reactorubd.io.IoRequest;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.uring.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.util.ReferenceCountUtil;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.Disposable;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Wires a queue's requests to a {@link BlockBackend}: at most depth requests in the backend at once, each answered
 * from its Mono. The same code serves kernel queues and the test kit's virtual device.
 *
 * <p>It is on every request's path, so it stays lean: one subscriber to the queue that asks for depth requests and
 * one more per answer, and one small subscriber per backend Mono, instead of a general-purpose operator chain.
 */
public final class BackendBridge {
    private BackendBridge() {}

    /**
     * Binds {@code backend} to each queue ({@link BlockBackend#bind}) and attaches what it returns, in queue order.
     * Signals each attachment's Disposable; an error from a bind ends the Flux with it.
     *
     * @param queues the device's queues, not yet subscribed to
     * @param backend the backend that answers the requests
     * @return a Flux of one Disposable per queue, which detaches the backend from it
     */
    public static Flux<Disposable> attachAll(List<UbdQueue> queues, BlockBackend backend) {
        return Flux.fromIterable(queues).concatMap(q -> backend.bind(q)
                .switchIfEmpty(Mono.error(() -> new IllegalStateException(backend + " bound nothing to " + q)))
                .map(bound -> attach(q, bound)));
    }

    /**
     * Subscribes to {@code queue}'s requests and serves them from {@code backend} until the queue ends: at most depth
     * requests in the backend at once, one more asked for each one answered.
     *
     * @param queue the queue, not yet subscribed to
     * @param backend the backend that answers the requests, called on the queue's loop
     * @return the subscription; disposing it cancels the queue's Flux (waiting requests then fail with EIO)
     */
    public static Disposable attach(UbdQueue queue, BlockBackend backend) {
        QueueSubscriber s = new QueueSubscriber(backend, queue.depth());
        queue.requests().subscribe(s);
        return s;
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
        Mono<?> call;
        try {
            call = call(backend, r);
        } catch (Throwable e) {
            answerError(r, e);
            done.run();
            return;
        }
        call.subscribe(new Answer(r, done));
    }

    private static Mono<?> call(BlockBackend backend, IoRequest r) {
        return switch (r.op()) {
            case READ -> backend.read(r.offset(), r.length(), r.queue().allocator());
            case WRITE -> backend.write(r.offset(), r.data(), r.fua());
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

    /** Asks the queue for depth requests, then one more for each request answered. */
    private static final class QueueSubscriber extends BaseSubscriber<IoRequest> {
        private final BlockBackend backend;
        private final int depth;
        private final Runnable requestOne = () -> request(1);

        QueueSubscriber(BlockBackend backend, int depth) {
            this.backend = backend;
            this.depth = depth;
        }

        @Override
        protected void hookOnSubscribe(Subscription subscription) {
            subscription.request(depth);
        }

        @Override
        protected void hookOnNext(IoRequest r) {
            serve(backend, r, requestOne);
        }

        @Override
        protected void hookOnError(Throwable error) {
            // The queue's own failure (its transport ended); the device reports it.
        }
    }

    /** Answers one request from the backend's Mono: its value (READ data), its completion, or its error. */
    private static final class Answer implements CoreSubscriber<Object> {
        private static final AtomicIntegerFieldUpdater<Answer> DONE =
                AtomicIntegerFieldUpdater.newUpdater(Answer.class, "done");
        private final IoRequest r;
        private final Runnable onAnswered;
        private volatile int done;

        Answer(IoRequest r, Runnable onAnswered) {
            this.r = r;
            this.onAnswered = onAnswered;
        }

        @Override
        public void onSubscribe(Subscription s) {
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(Object value) {
            if (!DONE.compareAndSet(this, 0, 1)) {
                ReferenceCountUtil.release(value);
                return;
            }
            if (r.op() == IoOp.READ && value instanceof ByteBuf data) {
                r.complete(data);
            } else {
                ReferenceCountUtil.release(value);
                r.complete();
            }
            onAnswered.run();
        }

        @Override
        public void onError(Throwable error) {
            if (DONE.compareAndSet(this, 0, 1)) {
                answerError(r, error);
                onAnswered.run();
            }
        }

        @Override
        public void onComplete() {
            if (DONE.compareAndSet(this, 0, 1)) {
                if (r.op() == IoOp.READ) {
                    r.fail(new UbdIoException(Errno.EIO, "the backend's read of " + r + " completed without data"));
                } else {
                    r.complete();
                }
                onAnswered.run();
            }
        }
    }
}

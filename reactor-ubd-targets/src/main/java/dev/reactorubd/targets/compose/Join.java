package dev.reactorubd.targets.compose;

import io.netty.util.ReferenceCountUtil;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;

/**
 * Runs Monos side by side and waits for every one of them to terminate, even when one fails early: a piece of a
 * write must not outlive the write's buffer, and a piece of a read that arrives late must be released, not lost.
 *
 * <p>Signals the values in source order ({@code null} where a source completed empty), or, once every source has
 * terminated, the first error, after releasing every value (reference-counted ones; the others are dropped). Values
 * that arrive after a cancellation are released too.
 */
final class Join {
    private static final Object GONE = new Object();

    private Join() {}

    static Mono<Object[]> all(Mono<?>[] sources) {
        if (sources.length == 0) {
            return Mono.just(new Object[0]);
        }
        return Mono.create(sink -> new State(sources, sink).start());
    }

    private static final class State {
        final Mono<?>[] sources;
        final MonoSink<Object[]> sink;
        final AtomicReferenceArray<Object> values;
        final AtomicReferenceArray<Subscription> subscriptions;
        final AtomicInteger remaining;
        final AtomicReference<Throwable> error = new AtomicReference<>();
        volatile boolean cancelled;

        State(Mono<?>[] sources, MonoSink<Object[]> sink) {
            this.sources = sources;
            this.sink = sink;
            this.values = new AtomicReferenceArray<>(sources.length);
            this.subscriptions = new AtomicReferenceArray<>(sources.length);
            this.remaining = new AtomicInteger(sources.length);
        }

        void start() {
            sink.onCancel(this::cancel);
            for (int i = 0; i < sources.length; i++) {
                sources[i].subscribe(new Inner(this, i));
            }
        }

        void cancel() {
            cancelled = true;
            for (int i = 0; i < sources.length; i++) {
                Subscription s = subscriptions.get(i);
                if (s != null) {
                    s.cancel();
                }
                release(i);
            }
        }

        void release(int i) {
            Object v = values.getAndSet(i, GONE);
            if (v != null && v != GONE) {
                ReferenceCountUtil.release(v);
            }
        }

        void value(int i, Object v) {
            if (cancelled || !values.compareAndSet(i, null, v)) {
                ReferenceCountUtil.release(v);
            } else if (cancelled) {
                release(i);
            }
        }

        void done() {
            if (remaining.decrementAndGet() != 0) {
                return;
            }
            Throwable e = error.get();
            if (e != null || cancelled) {
                for (int i = 0; i < sources.length; i++) {
                    release(i);
                }
                if (e != null) {
                    sink.error(e);
                }
                return;
            }
            Object[] out = new Object[sources.length];
            for (int i = 0; i < out.length; i++) {
                Object v = values.getAndSet(i, GONE);
                out[i] = v == GONE ? null : v;
            }
            sink.success(out);
        }
    }

    private static final class Inner implements CoreSubscriber<Object> {
        final State state;
        final int index;
        boolean done;

        Inner(State state, int index) {
            this.state = state;
            this.index = index;
        }

        @Override
        public void onSubscribe(Subscription s) {
            state.subscriptions.set(index, s);
            if (state.cancelled) {
                s.cancel();
            } else {
                s.request(Long.MAX_VALUE);
            }
        }

        @Override
        public void onNext(Object v) {
            if (done) {
                ReferenceCountUtil.release(v);
                return;
            }
            state.value(index, v);
        }

        @Override
        public void onError(Throwable e) {
            if (done) {
                return;
            }
            done = true;
            state.error.compareAndSet(null, e);
            state.done();
        }

        @Override
        public void onComplete() {
            if (done) {
                return;
            }
            done = true;
            state.done();
        }
    }
}

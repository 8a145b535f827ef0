package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;

/**
 * A test replica that can hold its requests until released (then answering them, or failing them), and that records
 * how many of its requests were in flight when it was closed and how many started after: what a replace must get
 * right about the replica it retires.
 */
final class HeldBackend extends DecoratorBackend {
    private final Shared shared;

    private static final class Shared {
        final AtomicReference<Sinks.Empty<Void>> gate = new AtomicReference<>();
        /** The gate the held requests wait on, kept by {@link #holdNoMore} until {@link #release}. */
        final AtomicReference<Sinks.Empty<Void>> closedGate = new AtomicReference<>();

        final AtomicReference<Throwable> releaseWith = new AtomicReference<>();
        final AtomicInteger inFlight = new AtomicInteger();
        final AtomicInteger held = new AtomicInteger();
        final AtomicInteger startedAfterClose = new AtomicInteger();
        final AtomicInteger inFlightAtClose = new AtomicInteger(-1);
        final AtomicBoolean closed = new AtomicBoolean();
    }

    HeldBackend(BlockBackend delegate) {
        this(delegate, new Shared(), null);
    }

    private HeldBackend(BlockBackend delegate, Shared shared, Scheduler loop) {
        super(delegate, loop);
        this.shared = shared;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new HeldBackend(boundDelegate, shared, queue.scheduler());
    }

    /** Requests from now on wait until {@link #release}. */
    void hold() {
        shared.releaseWith.set(null);
        shared.gate.set(Sinks.empty());
    }

    /** Requests from now on go through; those held so far stay held until {@link #release}. */
    void holdNoMore() {
        Sinks.Empty<Void> g = shared.gate.getAndSet(null);
        if (g != null) {
            shared.closedGate.set(g);
        }
    }

    /** Lets the held requests go on: to the delegate when {@code error} is null, else failing with it. */
    void release(Throwable error) {
        shared.releaseWith.set(error);
        for (AtomicReference<Sinks.Empty<Void>> ref : List.of(shared.gate, shared.closedGate)) {
            Sinks.Empty<Void> g = ref.getAndSet(null);
            if (g != null) {
                g.tryEmitEmpty();
            }
        }
    }

    /** Requests that reached it and have not terminated, held or not. */
    int inFlight() {
        return shared.inFlight.get();
    }

    int held() {
        return shared.held.get();
    }

    boolean isClosed() {
        return shared.closed.get();
    }

    int startedAfterClose() {
        return shared.startedAfterClose.get();
    }

    int inFlightAtClose() {
        return shared.inFlightAtClose.get();
    }

    private <T> Mono<T> guard(Supplier<Mono<T>> call) {
        return Mono.defer(() -> {
            if (shared.closed.get()) {
                shared.startedAfterClose.incrementAndGet();
            }
            shared.inFlight.incrementAndGet();
            Sinks.Empty<Void> g = shared.gate.get();
            Mono<T> answer;
            if (g == null) {
                answer = Mono.defer(call);
            } else {
                shared.held.incrementAndGet();
                answer = g.asMono().then(Mono.defer(() -> {
                    shared.held.decrementAndGet();
                    Throwable e = shared.releaseWith.get();
                    return e != null ? Mono.<T>error(e) : call.get();
                }));
            }
            return answer.doFinally(s -> shared.inFlight.decrementAndGet());
        });
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return guard(() -> delegate.read(offset, length, allocator));
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return guard(() -> delegate.write(offset, data, fua));
    }

    @Override
    public Mono<Void> flush() {
        return guard(delegate::flush);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return guard(() -> delegate.discard(offset, length));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return guard(() -> delegate.writeZeroes(offset, length, noUnmap));
    }

    @Override
    public Mono<Void> close() {
        return Mono.defer(() -> {
            shared.inFlightAtClose.compareAndSet(-1, shared.inFlight.get());
            shared.closed.set(true);
            return delegate.close();
        });
    }

    @Override
    public String toString() {
        return "held(" + delegate + ")";
    }
}

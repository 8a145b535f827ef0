package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.EnumSet;
import java.util.Set;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * A backend that wraps one other and passes through what it does not change: size, capabilities, allocator and close,
 * and, unless overridden, every request. Binding binds the delegate and makes a view of this decorator over the bound
 * delegate ({@link #bound}) that shares this decorator's state and runs its timers on the queue's loop.
 */
abstract class DecoratorBackend extends ComposableBackend {
    final BlockBackend delegate;
    /** The queue's loop for a bound view; null when unbound. */
    final Scheduler loop;

    DecoratorBackend(BlockBackend delegate, Scheduler loop) {
        if (delegate == null) {
            throw new IllegalArgumentException("the backend to wrap is null");
        }
        this.delegate = delegate;
        this.loop = loop;
    }

    /** A view of this decorator, with the same state, over {@code boundDelegate} and with timers on {@code queue}'s loop. */
    abstract DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue);

    /** Where timers and delayed calls run: the queue's loop when bound, else {@code Schedulers.parallel()}. */
    final Scheduler timers() {
        return loop != null ? loop : Schedulers.parallel();
    }

    @Override
    public Mono<BlockBackend> bind(UbdQueue queue) {
        return delegate.bind(queue)
                .switchIfEmpty(Mono.error(() -> new IllegalStateException(delegate + " bound nothing to " + queue)))
                .map(d -> bound(d, queue));
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return delegate.read(offset, length, allocator);
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return delegate.write(offset, data, fua);
    }

    @Override
    public Mono<Void> flush() {
        return delegate.flush();
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return delegate.discard(offset, length);
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return delegate.writeZeroes(offset, length, noUnmap);
    }

    /**
     * The delegate's capabilities, but {@link Capability#ZERO_COPY}: a decorator sees every request's data (to cache,
     * retry, limit or fault it), so its requests are copied, and the kernel need not register their pages.
     */
    @Override
    public Set<Capability> capabilities() {
        Set<Capability> c = delegate.capabilities();
        if (!c.contains(Capability.ZERO_COPY)) {
            return c;
        }
        EnumSet<Capability> without = EnumSet.copyOf(c);
        without.remove(Capability.ZERO_COPY);
        return without;
    }

    @Override
    public ByteBufAllocator allocator() {
        return delegate.allocator();
    }

    @Override
    public long size() {
        return delegate.size();
    }

    @Override
    public Mono<Void> close() {
        return delegate.close();
    }
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * A bounded read cache in front of a slow backend, write-through, least-recently-used by block. Made by {@link
 * ComposableBackend#cache(long)}.
 *
 * <h2>Behaviour</h2>
 * <ul>
 * <li>READ: when every block the read touches is cached, it is served from memory (a hit) into a buffer of the
 * caller's allocator; otherwise the whole read goes to the backend (a miss) and the blocks it covers entirely are
 * cached from its answer. Partly covered blocks at its edges are not cached.</li>
 * <li>WRITE, DISCARD and WRITE_ZEROES go to the backend, and invalidate the blocks they touch before they are issued
 * and again once the backend answered, success or failure, before the answer is passed on: the next read of those
 * blocks goes to the backend. (Invalidating rather than storing the written data keeps the cache right when writes to
 * one block from two queues complete in another order than the backend applied them.) FLUSH passes through.</li>
 * <li>The least recently used blocks are evicted to stay within the capacity: whole blocks within the bytes given.</li>
 * </ul>
 *
 * <h2>Concurrency</h2>
 * One cache is shared by every queue (a bound view shares it). A read that raced a write never caches what it read:
 * each block maps to a stripe with a generation and a count of writes in flight; a miss takes the generations of its
 * blocks before it asks the backend, and caches a block only if no write of its stripe was in flight then and none
 * began or ended since, checked again after the block is put in (a block that fails the second check is taken out).
 * So a cached block always holds data the backend held after the last completed write of it. The LRU map is guarded by
 * a lock held only for map operations; blocks are immutable once cached and copied outside the lock.
 *
 * <p><b>Errors</b>: the backend's, unchanged; a failed read caches nothing. <b>Memory</b>: heap arrays of the block
 * size, at most the capacity, plus one block per miss in flight while it is copied in.
 */
public final class CacheBackend extends DecoratorBackend {
    /** The default block: 4 KiB. */
    public static final int DEFAULT_BLOCK = 4096;

    private final Store store;

    CacheBackend(BlockBackend delegate, long bytes, int blockBytes) {
        super(delegate, null);
        this.store = new Store(bytes, blockBytes);
    }

    private CacheBackend(Store store, BlockBackend delegate, Scheduler loop) {
        super(delegate, loop);
        this.store = store;
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return new CacheBackend(store, boundDelegate, queue.scheduler());
    }

    /** {@return hits, misses, evictions and the bytes cached, now} */
    public CacheStats stats() {
        return store.stats();
    }

    /** Drops every cached block (counted neither as eviction nor as invalidation). */
    public void invalidateAll() {
        store.clear();
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        if (length <= 0 || offset < 0) {
            return Support.call(() -> delegate.read(offset, length, allocator));
        }
        int b = store.block;
        long first = offset / b;
        long last = (offset + length - 1) / b;
        byte[][] blocks = store.lookup(first, last);
        if (blocks != null) {
            ByteBuf out = allocator.directBuffer(length, length);
            long pos = offset;
            for (byte[] block : blocks) {
                int in = (int) (pos % b);
                int n = (int) Math.min(b - in, offset + length - pos);
                out.writeBytes(block, in, n);
                pos += n;
            }
            return Mono.just(out);
        }
        long fullFirst = (offset + b - 1) / b;
        long fullLast = (offset + length) / b - 1;
        long[] generations = fullLast >= fullFirst ? new long[(int) (fullLast - fullFirst + 1)] : null;
        for (int i = 0; generations != null && i < generations.length; i++) {
            generations[i] = store.generations.snapshot(fullFirst + i);
        }
        Mono<ByteBuf> miss = Support.call(() -> delegate.read(offset, length, allocator));
        return generations == null
                ? miss
                : miss.doOnNext(buf -> {
                    if (buf.readableBytes() == length) {
                        store.fill(buf, offset, fullFirst, generations);
                    }
                });
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return modifying(offset, data.readableBytes(), () -> delegate.write(offset, data, fua));
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return modifying(offset, length, () -> delegate.discard(offset, length));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return modifying(offset, length, () -> delegate.writeZeroes(offset, length, noUnmap));
    }

    private Mono<Void> modifying(long offset, long length, Supplier<Mono<Void>> call) {
        if (length <= 0 || offset < 0) {
            return Support.call(call);
        }
        long first = offset / store.block;
        long last = (offset + length - 1) / store.block;
        return Mono.defer(() -> {
            store.generations.begin(first, last);
            store.invalidate(first, last);
            AtomicBoolean ended = new AtomicBoolean();
            Runnable end = () -> {
                if (ended.compareAndSet(false, true)) {
                    store.generations.end(first, last);
                    store.invalidate(first, last);
                }
            };
            // Before the answer is passed on: a read issued after this write completed must not hit old data.
            return Support.call(call).doOnTerminate(end).doOnCancel(end);
        });
    }

    @Override
    public String toString() {
        return "cache(" + store.maxBlocks * store.block + " bytes, " + delegate + ")";
    }

    /** The cache itself, shared by the backend and its bound views. */
    private static final class Store {
        final int block;
        final long maxBlocks;
        final Generations generations = new Generations();
        final LongAdder hits = new LongAdder();
        final LongAdder misses = new LongAdder();
        final LongAdder evictions = new LongAdder();
        /** Block index to its bytes, in access order; guarded by itself. */
        final LinkedHashMap<Long, byte[]> lru;

        Store(long bytes, int blockBytes) {
            if (blockBytes < 512 || blockBytes % 512 != 0) {
                throw new IllegalArgumentException(
                        "the cache block must be a positive multiple of 512 bytes; was " + blockBytes);
            }
            if (bytes < blockBytes) {
                throw new IllegalArgumentException("a cache of " + bytes + " bytes holds no block of " + blockBytes);
            }
            this.block = blockBytes;
            this.maxBlocks = bytes / blockBytes;
            this.lru = new LinkedHashMap<>(16, 0.75f, true) {
                private static final long serialVersionUID = 1L;

                @Override
                protected boolean removeEldestEntry(Map.Entry<Long, byte[]> eldest) {
                    if (size() > maxBlocks) {
                        evictions.increment();
                        return true;
                    }
                    return false;
                }
            };
        }

        /** The blocks {@code first..last}, or null (a miss) when one of them is not cached. */
        byte[][] lookup(long first, long last) {
            byte[][] out = new byte[(int) (last - first + 1)][];
            synchronized (lru) {
                for (int i = 0; i < out.length; i++) {
                    out[i] = lru.get(first + i);
                    if (out[i] == null) {
                        misses.increment();
                        return null;
                    }
                }
            }
            hits.increment();
            return out;
        }

        /** Caches the blocks a miss read entirely, from {@code fullFirst} on, unless a write touched them. */
        void fill(ByteBuf buf, long offset, long fullFirst, long[] snapshots) {
            for (int i = 0; i < snapshots.length; i++) {
                long index = fullFirst + i;
                long g = snapshots[i];
                if (!generations.unchanged(index, g)) {
                    continue;
                }
                byte[] data = new byte[block];
                buf.getBytes(buf.readerIndex() + (int) (index * block - offset), data);
                synchronized (lru) {
                    lru.put(index, data);
                }
                if (!generations.unchanged(index, g)) {
                    synchronized (lru) {
                        lru.remove(index, data);
                    }
                }
            }
        }

        void invalidate(long first, long last) {
            synchronized (lru) {
                if (last - first + 1 > lru.size()) {
                    lru.keySet().removeIf(k -> k >= first && k <= last);
                } else {
                    for (long k = first; k <= last; k++) {
                        lru.remove(k);
                    }
                }
            }
        }

        void clear() {
            synchronized (lru) {
                lru.clear();
            }
        }

        CacheStats stats() {
            long size;
            synchronized (lru) {
                size = lru.size();
            }
            return new CacheStats(hits.sum(), misses.sum(), evictions.sum(), size * block, maxBlocks * block);
        }
    }
}

package dev.reactorubd.targets;

import dev.reactorubd.io.Buffers;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.RequestChecks;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;
import reactor.core.publisher.Mono;

/**
 * A sparse RAM disk: 4 KiB pages are allocated on their first write, holes read as zeros, and DISCARD (or
 * WRITE_ZEROES without NOUNMAP) frees whole pages. Memory follows what was written, not the capacity.
 *
 * <p>Requests are served synchronously on the calling queue's loop (a memory copy). Each page is copied under its
 * own lock, so a request overlapping a concurrent one on another queue sees whole pages of one or the other; like a
 * real disk, it promises nothing finer for overlapping IO in flight together.
 */
public final class MemoryBackend implements BlockBackend {
    /** The unit of allocation. */
    public static final int PAGE = 4096;

    /** Pages per chunk of the page table: a chunk's array is made on the first write into its 4 MiB. */
    private static final int CHUNK_PAGES = 1024;

    private static final byte[] ZERO_PAGE = new byte[PAGE];

    private final long capacity;
    /**
     * The page table, two levels so that an idle device costs one small array (256 entries per GiB) and pages cost
     * nothing until written: chunks of CHUNK_PAGES page slots, made on first write. Lock-free lookups, with no boxed
     * key or map node per access (the former map allocated on every request).
     */
    private final AtomicReferenceArray<AtomicReferenceArray<byte[]>> chunks;

    private final AtomicLong allocated = new AtomicLong();

    /**
     * A RAM disk of {@code capacityBytes}, all zeros; pages are allocated on first write and freed by discard.
     *
     * @param capacityBytes the size in bytes, positive, at most 2^43 (8 TiB)
     */
    public MemoryBackend(long capacityBytes) {
        if (capacityBytes <= 0 || capacityBytes > 1L << 43) {
            throw new IllegalArgumentException("capacity must be from 1 byte to 8 TiB; was " + capacityBytes);
        }
        this.capacity = capacityBytes;
        long pageCount = (capacityBytes + PAGE - 1) / PAGE;
        this.chunks = new AtomicReferenceArray<>((int) ((pageCount + CHUNK_PAGES - 1) / CHUNK_PAGES));
    }

    /** {@return pages currently allocated} */
    public long allocatedPages() {
        return allocated.get();
    }

    /** {@return bytes of page memory currently allocated} */
    public long allocatedBytes() {
        return allocated.get() * PAGE;
    }

    private Mono<Void> checkRange(long offset, long length) {
        return RequestChecks.checkRange(capacity, offset, length, this);
    }

    private byte[] page(long index) {
        AtomicReferenceArray<byte[]> chunk = chunks.get((int) (index / CHUNK_PAGES));
        return chunk == null ? null : chunk.get((int) (index % CHUNK_PAGES));
    }

    private byte[] pageForWrite(long index) {
        int c = (int) (index / CHUNK_PAGES);
        AtomicReferenceArray<byte[]> chunk = chunks.get(c);
        if (chunk == null) {
            chunks.compareAndSet(c, null, new AtomicReferenceArray<>(CHUNK_PAGES));
            chunk = chunks.get(c);
        }
        int i = (int) (index % CHUNK_PAGES);
        byte[] page = chunk.get(i);
        if (page == null) {
            if (chunk.compareAndSet(i, null, new byte[PAGE])) {
                allocated.incrementAndGet();
            }
            page = chunk.get(i);
        }
        return page;
    }

    private void freePage(long index) {
        AtomicReferenceArray<byte[]> chunk = chunks.get((int) (index / CHUNK_PAGES));
        if (chunk != null && chunk.getAndSet((int) (index % CHUNK_PAGES), null) != null) {
            allocated.decrementAndGet();
        }
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        Mono<Void> bad = checkRange(offset, length);
        if (bad != null) {
            return bad.then(Mono.empty());
        }
        ByteBuf out = allocator.directBuffer(length, length);
        int at = 0;
        for (long pos = offset, end = offset + length; pos < end; ) {
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            byte[] page = page(pos / PAGE);
            if (page == null) {
                Buffers.copy(ZERO_PAGE, 0, out, at, n);
            } else {
                synchronized (page) {
                    Buffers.copy(page, in, out, at, n);
                }
            }
            at += n;
            pos += n;
        }
        return Mono.just(out.writerIndex(length));
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        int length = data.readableBytes();
        Mono<Void> bad = checkRange(offset, length);
        if (bad != null) {
            return bad;
        }
        int from = data.readerIndex();
        for (long pos = offset, end = offset + length; pos < end; ) {
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            byte[] page = pageForWrite(pos / PAGE);
            synchronized (page) {
                Buffers.copy(data, from, page, in, n);
            }
            from += n;
            pos += n;
        }
        return Mono.empty();
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        Mono<Void> bad = checkRange(offset, length);
        return bad != null ? bad : Mono.fromRunnable(() -> zero(offset, length, true));
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        Mono<Void> bad = checkRange(offset, length);
        return bad != null ? bad : Mono.fromRunnable(() -> zero(offset, length, !noUnmap));
    }

    /** Zeroes a range; whole pages are freed when {@code free}. Holes already read as zeros. */
    private void zero(long offset, long length, boolean free) {
        for (long pos = offset, end = offset + length; pos < end; ) {
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            if (n == PAGE && free) {
                freePage(pos / PAGE);
            } else {
                byte[] page = page(pos / PAGE);
                if (page != null) {
                    synchronized (page) {
                        Arrays.fill(page, in, in + n, (byte) 0);
                    }
                }
            }
            pos += n;
        }
    }

    /** The capacity given at construction. */
    @Override
    public long size() {
        return capacity;
    }

    @Override
    public Set<Capability> capabilities() {
        return EnumSet.of(Capability.DISCARD, Capability.WRITE_ZEROES);
    }

    @Override
    public String toString() {
        return "memory(" + capacity + " bytes, " + allocated.get() + " pages)";
    }
}

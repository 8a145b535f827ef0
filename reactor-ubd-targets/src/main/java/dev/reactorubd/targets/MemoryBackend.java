package dev.reactorubd.targets;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.uring.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
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

    private final long capacity;
    private final ConcurrentHashMap<Long, byte[]> pages = new ConcurrentHashMap<>();

    /**
     * A RAM disk of {@code capacityBytes}, all zeros; pages are allocated on first write and freed by discard.
     *
     * @param capacityBytes the size in bytes, positive
     */
    public MemoryBackend(long capacityBytes) {
        if (capacityBytes <= 0) {
            throw new IllegalArgumentException("capacity must be positive; was " + capacityBytes);
        }
        this.capacity = capacityBytes;
    }

    /** {@return pages currently allocated} */
    public long allocatedPages() {
        return pages.size();
    }

    /** {@return bytes of page memory currently allocated} */
    public long allocatedBytes() {
        return (long) pages.size() * PAGE;
    }

    private Mono<Void> checkRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset > capacity - length) { // no offset + length: it overflows
            return Mono.error(new UbdIoException(Errno.EINVAL, "range " + offset + "+" + length
                    + " is beyond the capacity " + capacity));
        }
        return null;
    }

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        Mono<Void> bad = checkRange(offset, length);
        if (bad != null) {
            return bad.then(Mono.empty());
        }
        ByteBuf out = allocator.directBuffer(length, length);
        forEachPage(offset, length, (index, in, n) -> {
            byte[] page = pages.get(index);
            if (page == null) {
                out.writeZero(n);
            } else {
                synchronized (page) {
                    out.writeBytes(page, in, n);
                }
            }
        });
        return Mono.just(out);
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        int length = data.readableBytes();
        Mono<Void> bad = checkRange(offset, length);
        if (bad != null) {
            return bad;
        }
        int[] from = {data.readerIndex()};
        forEachPage(offset, length, (index, in, n) -> {
            byte[] page = pages.computeIfAbsent(index, i -> new byte[PAGE]);
            synchronized (page) {
                data.getBytes(from[0], page, in, n);
            }
            from[0] += n;
        });
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
        forEachPage(offset, length, (index, in, n) -> {
            if (n == PAGE && free) {
                pages.remove(index);
            } else {
                byte[] page = pages.get(index);
                if (page != null) {
                    synchronized (page) {
                        java.util.Arrays.fill(page, in, in + n, (byte) 0);
                    }
                }
            }
        });
    }

    /** What to do with one page's part of a range: page index, offset in the page, byte count. */
    @FunctionalInterface
    private interface PagePart {
        void accept(long index, int in, int n);
    }

    /** Splits {@code [offset, offset + length)} into page parts, in order. */
    private static void forEachPage(long offset, long length, PagePart part) {
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            part.accept(pos / PAGE, in, n);
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
        return "memory(" + capacity + " bytes, " + pages.size() + " pages)";
    }
}

package dev.reactorubd.uring;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A read-only shared mapping of part of a file, made with {@code mmap(2)} and released with {@code munmap(2)}.
 * {@code FileChannel.map} cannot map character devices (their size is 0), hence this class; ublk's descriptor
 * area is mapped read-only because the driver refuses writable mappings.
 *
 * <p>The segment must not be used after {@link #close()}; callers close a region only once every reader is done.
 */
public final class MappedRegion implements AutoCloseable {
    private final MemorySegment segment;
    private final AtomicBoolean closed = new AtomicBoolean();

    private MappedRegion(MemorySegment segment) {
        this.segment = segment;
    }

    /**
     * Maps {@code length} bytes of {@code fd} at {@code offset}, read-only and shared.
     *
     * @param fd the file descriptor
     * @param offset the offset in the file, a multiple of the page size
     * @param length the length in bytes
     * @return the mapping; close it to unmap
     * @throws UbdException with the errno when the kernel refuses
     */
    public static MappedRegion mapReadOnly(int fd, long offset, long length) {
        long addr = Libc.mmap(length, Libc.PROT_READ, Libc.MAP_SHARED, fd, offset);
        if (addr < 0) {
            throw new UbdException(
                    "mmap of " + length + " bytes at offset " + offset + " failed: " + Errno.describe((int) addr),
                    (int) addr);
        }
        return new MappedRegion(MemorySegment.ofAddress(addr).reinterpret(length));
    }

    /** {@return the mapped bytes} */
    public MemorySegment segment() {
        return segment;
    }

    /** Unmaps the region; idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Libc.munmap(segment.address(), segment.byteSize());
        }
    }
}

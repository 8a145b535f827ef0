package dev.reactorubd.targets.file;

import dev.reactorubd.io.Buffers;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Direct buffers whose first byte sits at a multiple of {@code alignment}, as O_DIRECT wants, carved from another
 * allocator's buffers: each is a slice of a buffer {@code alignment - 1} bytes longer, and releasing it releases that
 * buffer. So O_DIRECT needs no pool of its own: memory comes from the application's allocator.
 *
 * <p>Direct buffers have a fixed capacity, the initial one. Heap buffers are the delegate's.
 */
final class AlignedAllocator extends AbstractByteBufAllocator {
    private final ByteBufAllocator delegate;
    private final int alignment;

    AlignedAllocator(ByteBufAllocator delegate, int alignment) {
        super(true);
        if (Integer.bitCount(alignment) != 1) {
            throw new IllegalArgumentException("alignment must be a power of two; was " + alignment);
        }
        this.delegate = delegate;
        this.alignment = alignment;
    }

    int alignment() {
        return alignment;
    }

    /** Whether {@code buf}'s readable bytes start at an aligned native address. */
    boolean isAligned(ByteBuf buf) {
        return Buffers.isContiguousDirect(buf) && (Buffers.address(buf, buf.readerIndex()) & (alignment - 1)) == 0;
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        int capacity = initialCapacity;
        ByteBuf whole = delegate.directBuffer(capacity + alignment - 1, capacity + alignment - 1);
        if (!Buffers.isContiguousDirect(whole)) {
            whole.release();
            throw new IllegalStateException(delegate + " gave a direct buffer without one native address");
        }
        long address = Buffers.address(whole, 0);
        int skip = (int) ((alignment - (address & (alignment - 1))) & (alignment - 1));
        // A slice shares its parent's reference count: releasing it releases the whole buffer.
        return whole.slice(skip, capacity).clear();
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return delegate.heapBuffer(initialCapacity, maxCapacity);
    }

    @Override
    public boolean isDirectBufferPooled() {
        return delegate.isDirectBufferPooled();
    }

    @Override
    public String toString() {
        return "AlignedAllocator[" + alignment + ", " + delegate + "]";
    }
}

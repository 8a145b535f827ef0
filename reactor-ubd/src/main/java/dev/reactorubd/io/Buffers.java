package dev.reactorubd.io;

import io.netty.buffer.ByteBuf;
import io.netty.util.IllegalReferenceCountException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Native addresses of Netty buffers, for the kernel to copy into or out of. */
public final class Buffers {
    private Buffers() {}

    /**
     * Whether {@code buf}'s readable bytes sit at one native address.
     *
     * @param buf the buffer
     * @return whether {@code buf}'s readable bytes sit at one native address
     */
    public static boolean isContiguousDirect(ByteBuf buf) {
        return buf.hasMemoryAddress() || (buf.isDirect() && buf.nioBufferCount() == 1);
    }

    /**
     * The native address of byte {@code index} of a contiguous direct buffer.
     *
     * @param buf a contiguous direct buffer
     * @param index the index of the byte
     * @return the native address of byte {@code index} of a contiguous direct buffer
     */
    public static long address(ByteBuf buf, int index) {
        if (buf.hasMemoryAddress()) {
            return buf.memoryAddress() + index;
        }
        // Without Unsafe, Netty cannot tell the address; the NIO view can.
        return MemorySegment.ofBuffer(buf.internalNioBuffer(index, 1)).address();
    }

    /**
     * Releases {@code buf} once, unless a careless owner released it already: a backend that releases a buffer it
     * handed over (or the write data it was lent) must cost that request alone, never the queue's bookkeeping, so the
     * second release is dropped instead of thrown.
     *
     * @param buf the buffer, or null
     * @return whether this call released it
     */
    public static boolean releaseOnce(ByteBuf buf) {
        if (buf == null || buf.refCnt() == 0) {
            return false;
        }
        try {
            buf.release();
            return true;
        } catch (IllegalReferenceCountException e) {
            return false; // released by someone else between the check and the release
        }
    }

    /** All of memory, for copies at native addresses. */
    private static final MemorySegment MEMORY = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    /**
     * Copies {@code length} bytes at {@code index} of {@code src} into {@code dst} at {@code offset}, leaving the
     * indexes alone. Where Netty knows the buffer's native address (every pooled direct buffer does, even without
     * sun.misc.Unsafe on JDK 25) this allocates nothing; {@code ByteBuf.getBytes} would go through an NIO view.
     *
     * @param src the buffer to copy from
     * @param index the index of the first byte in {@code src}
     * @param dst the array to copy into
     * @param offset where in {@code dst}
     * @param length how many bytes
     */
    public static void copy(ByteBuf src, int index, byte[] dst, int offset, int length) {
        if (src.hasMemoryAddress()) {
            check(src, index, length);
            MemorySegment.copy(MEMORY, ValueLayout.JAVA_BYTE, src.memoryAddress() + index, dst, offset, length);
        } else {
            src.getBytes(index, dst, offset, length);
        }
    }

    /**
     * Copies {@code length} bytes of {@code src} from {@code offset} into {@code dst} at {@code index}, leaving the
     * indexes alone; allocation-free as {@link #copy(ByteBuf, int, byte[], int, int)} is.
     *
     * @param src the array to copy from
     * @param offset where in {@code src}
     * @param dst the buffer to copy into
     * @param index the index of the first byte in {@code dst}
     * @param length how many bytes
     */
    public static void copy(byte[] src, int offset, ByteBuf dst, int index, int length) {
        if (dst.hasMemoryAddress()) {
            check(dst, index, length);
            MemorySegment.copy(src, offset, MEMORY, ValueLayout.JAVA_BYTE, dst.memoryAddress() + index, length);
        } else {
            dst.setBytes(index, src, offset, length);
        }
    }

    /** What ByteBuf's own accessors check: the buffer is not released, and the range is inside it. */
    private static void check(ByteBuf buf, int index, int length) {
        if (buf.refCnt() == 0) {
            throw new IllegalReferenceCountException(0);
        }
        if (index < 0 || length < 0 || index > buf.capacity() - length) {
            throw new IndexOutOfBoundsException("index " + index + " length " + length + " capacity " + buf.capacity());
        }
    }
}

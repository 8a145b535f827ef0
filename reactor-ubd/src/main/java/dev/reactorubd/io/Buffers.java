package dev.reactorubd.io;

import io.netty.buffer.ByteBuf;
import io.netty.util.IllegalReferenceCountException;
import java.lang.foreign.MemorySegment;

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
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.server.BlockBackend;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * RAID-0: the device's bytes interleaved over its parts in chunks; chunk {@code c} is chunk {@code c / n} of part
 * {@code c % n} (n parts). Made by {@link Backends#stripe}.
 *
 * <p>A request within one chunk goes to its part as it is; a longer one is split at chunk edges and the pieces are
 * issued together, a read's pieces reassembled in order. FLUSH goes to every part that has FLUSH.
 *
 * <p><b>Size</b>: parts × the smallest part's size rounded down to the chunk, or unknown when a part's size is unknown
 * (then ranges are not checked here). <b>Capabilities</b>: DISCARD and WRITE_ZEROES when every part has them, FLUSH when
 * any part has it (FUA when every part with FLUSH has FUA). <b>Errors</b>: a piece's error fails the request with its
 * errno once every piece has terminated; ranges beyond the size fail with EINVAL. <b>Threads</b>: no state of its own
 * beyond its layout; pieces are issued on the calling thread.
 */
public final class StripeBackend extends SplitBackend {
    private final int chunk;

    static StripeBackend of(int chunkBytes, BlockBackend[] parts) {
        checkChunk(chunkBytes);
        BlockBackend[] checked = Support.checkParts("stripe", parts, 1);
        return new StripeBackend(
                chunkBytes,
                checked,
                new Layout.Stripe(chunkBytes, checked.length),
                sizeOf(chunkBytes, checked),
                new AtomicBoolean());
    }

    private StripeBackend(int chunkBytes, BlockBackend[] parts, Layout layout, long size, AtomicBoolean closed) {
        super(parts, layout, size, closed);
        this.chunk = chunkBytes;
    }

    private static int checkChunk(int chunkBytes) {
        if (chunkBytes < 512 || chunkBytes % 512 != 0) {
            throw new IllegalArgumentException("the chunk must be a positive multiple of 512 bytes; was " + chunkBytes);
        }
        return chunkBytes;
    }

    private static long sizeOf(int chunk, BlockBackend[] parts) {
        long min = Long.MAX_VALUE;
        for (BlockBackend p : parts) {
            long s = p.size();
            if (s == UNKNOWN_SIZE) {
                return UNKNOWN_SIZE;
            }
            min = Math.min(min, s);
        }
        return Math.multiplyExact(min / chunk * chunk, (long) parts.length);
    }

    @Override
    SplitBackend withParts(BlockBackend[] bound) {
        return new StripeBackend(chunk, bound, layout, size, closed);
    }

    /** {@return the chunk size in bytes} */
    public int chunkBytes() {
        return chunk;
    }

    @Override
    public String toString() {
        return "stripe(" + chunk + ", " + Arrays.toString(parts) + ")";
    }
}

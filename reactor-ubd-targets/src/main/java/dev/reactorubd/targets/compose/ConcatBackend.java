package dev.reactorubd.targets.compose;

import dev.reactorubd.server.BlockBackend;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Parts end to end: device bytes {@code [s_i, s_i + size_i)} are part {@code i}'s bytes {@code [0, size_i)}, where
 * {@code s_i} is the sum of the sizes before it. Made by {@link Backends#concat}; every part must know its size (a
 * positive {@link BlockBackend#size()}), which is checked at construction.
 *
 * <p>A request that crosses a part boundary is split there and the pieces are issued together, a read's pieces
 * reassembled in order. FLUSH goes to every part that has FLUSH.
 *
 * <p><b>Size</b>: the sum of the parts' sizes. <b>Capabilities</b>: DISCARD and WRITE_ZEROES when every part has them,
 * FLUSH when any part has it (FUA when every part with FLUSH has FUA). <b>Errors</b>: a piece's error fails the request
 * with its errno once every piece has terminated; ranges beyond the size fail with EINVAL. <b>Threads</b>: no state of
 * its own beyond its layout; pieces are issued on the calling thread.
 */
public final class ConcatBackend extends SplitBackend {
    ConcatBackend(BlockBackend[] parts) {
        this(Support.checkParts("concat", parts, 1), new AtomicBoolean());
    }

    private ConcatBackend(BlockBackend[] parts, AtomicBoolean closed) {
        this(parts, new Layout.Concat(sizes(parts)), closed);
    }

    private ConcatBackend(BlockBackend[] parts, Layout.Concat layout, AtomicBoolean closed) {
        super(parts, layout, layout.total(), closed);
    }

    private static long[] sizes(BlockBackend[] parts) {
        long[] sizes = new long[parts.length];
        for (int i = 0; i < parts.length; i++) {
            sizes[i] = parts[i].size();
            if (sizes[i] <= 0) {
                throw new IllegalArgumentException("concat needs every part's size; part " + i + " (" + parts[i]
                        + ") reports " + (sizes[i] == UNKNOWN_SIZE ? "an unknown size" : "size " + sizes[i]));
            }
        }
        return sizes;
    }

    @Override
    SplitBackend withParts(BlockBackend[] bound) {
        return new ConcatBackend(bound, (Layout.Concat) layout, closed);
    }

    @Override
    public String toString() {
        return "concat(" + Arrays.toString(parts) + ")";
    }
}

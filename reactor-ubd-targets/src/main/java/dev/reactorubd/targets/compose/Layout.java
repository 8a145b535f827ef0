package dev.reactorubd.targets.compose;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where the bytes of a composed device live among its parts: the one splitting loop that stripe and concat share.
 * A subclass only says, for one device offset, which part holds it, at which offset of that part, and how many bytes
 * from there stay in that part contiguously.
 */
abstract class Layout {
    /** One part's share of a request: {@code length} bytes at {@code partOffset} of {@code part}, {@code at} bytes
     * into the request. */
    record Piece(int part, long partOffset, long at, long length) {}

    /** Puts in {@code into} the part and part offset of device offset {@code pos}; returns the bytes that follow
     * contiguously in that part (at least 1). */
    abstract long locate(long pos, long[] into);

    /** {@code [offset, offset + length)} as pieces, in device order. */
    final List<Piece> split(long offset, long length) {
        List<Piece> out = new ArrayList<>(2);
        long[] where = new long[2];
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            long room = locate(pos, where);
            long n = Math.min(room, end - pos);
            out.add(new Piece((int) where[0], where[1], pos - offset, n));
            pos += n;
        }
        return out;
    }

    /** RAID-0: chunk {@code c} of the device is chunk {@code c / parts} of part {@code c % parts}. */
    static final class Stripe extends Layout {
        final int chunk;
        final int parts;

        Stripe(int chunk, int parts) {
            this.chunk = chunk;
            this.parts = parts;
        }

        @Override
        long locate(long pos, long[] into) {
            long c = pos / chunk;
            long in = pos % chunk;
            into[0] = c % parts;
            into[1] = (c / parts) * chunk + in;
            return chunk - in;
        }
    }

    /** Parts end to end: part {@code i} holds device bytes {@code starts[i]} to {@code starts[i + 1]}. */
    static final class Concat extends Layout {
        final long[] starts;

        /** @param sizes each part's size, all positive */
        Concat(long[] sizes) {
            starts = new long[sizes.length + 1];
            for (int i = 0; i < sizes.length; i++) {
                starts[i + 1] = Math.addExact(starts[i], sizes[i]);
            }
        }

        long total() {
            return starts[starts.length - 1];
        }

        @Override
        long locate(long pos, long[] into) {
            int i = Arrays.binarySearch(starts, pos);
            // An exact hit is the start of part i (parts are never empty); else the part before the insertion point.
            int part = i >= 0 ? i : -i - 2;
            into[0] = part;
            into[1] = pos - starts[part];
            return starts[part + 1] - pos;
        }
    }
}

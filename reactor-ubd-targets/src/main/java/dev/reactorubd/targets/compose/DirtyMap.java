package dev.reactorubd.targets.compose;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/** A fixed-size concurrent bitset: one bit per region, set and cleared with atomics, with a count of set bits. */
final class DirtyMap {
    private final long bits;
    private final AtomicLongArray words;
    private final AtomicLong count = new AtomicLong();

    DirtyMap(long bits) {
        if (bits < 0 || (bits + 63) / 64 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("too many regions: " + bits);
        }
        this.bits = bits;
        this.words = new AtomicLongArray((int) ((bits + 63) / 64));
    }

    /** Sets bits {@code first..last} (inclusive, clipped to the map). */
    void mark(long first, long last) {
        for (long b = Math.max(0, first); b <= last && b < bits; b++) {
            set(b);
        }
    }

    void markAll() {
        mark(0, bits - 1);
    }

    private void set(long b) {
        int w = (int) (b >>> 6);
        long m = 1L << (b & 63);
        long old;
        do {
            old = words.get(w);
            if ((old & m) != 0) {
                return;
            }
        } while (!words.compareAndSet(w, old, old | m));
        count.incrementAndGet();
    }

    /** Clears bit {@code b}; whether it was set. */
    boolean clear(long b) {
        int w = (int) (b >>> 6);
        long m = 1L << (b & 63);
        long old;
        do {
            old = words.get(w);
            if ((old & m) == 0) {
                return false;
            }
        } while (!words.compareAndSet(w, old, old & ~m));
        count.decrementAndGet();
        return true;
    }

    boolean isSet(long b) {
        return (words.get((int) (b >>> 6)) & (1L << (b & 63))) != 0;
    }

    /** The first set bit at or after {@code from}, or -1. */
    long next(long from) {
        if (from >= bits) {
            return -1;
        }
        int w = (int) (Math.max(0, from) >>> 6);
        long word = words.get(w) & (-1L << (Math.max(0, from) & 63));
        while (true) {
            if (word != 0) {
                long b = ((long) w << 6) + Long.numberOfTrailingZeros(word);
                return b < bits ? b : -1;
            }
            if (++w >= words.length()) {
                return -1;
            }
            word = words.get(w);
        }
    }

    /** Bits set now. */
    long count() {
        return count.get();
    }

    long size() {
        return bits;
    }
}

package dev.reactorubd.targets.compose;

import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Tells whether a unit (a cache block, a mirror region) was written while something else looked at it, without
 * locks: every unit maps to one of {@value #STRIPES} stripes (unit modulo the stripe count), and each stripe has a
 * generation and a count of writes in flight.
 *
 * <p>A write calls {@link #begin} before it is issued (in flight + 1, generation + 1) and {@link #end} once it has
 * terminated, whichever way (generation + 1, in flight - 1). A reader takes a {@link #snapshot} before it issues its
 * own IO and checks {@link #unchanged} afterwards: unchanged means that no write of the stripe was in flight at the
 * snapshot and none began or ended since, so what the reader saw is what the unit holds. Units sharing a stripe can
 * only make the answer "changed" more often, never wrongly "unchanged".
 */
final class Generations {
    static final int STRIPES = 4096;
    private static final int MASK = STRIPES - 1;
    private final AtomicLongArray generation = new AtomicLongArray(STRIPES);
    private final AtomicIntegerArray inFlight = new AtomicIntegerArray(STRIPES);

    private static int stripe(long unit) {
        return (int) (unit & MASK);
    }

    /** A write of units {@code first..last} (inclusive) is about to be issued. */
    void begin(long first, long last) {
        if (last - first + 1 >= STRIPES) {
            for (int i = 0; i < STRIPES; i++) {
                inFlight.incrementAndGet(i);
                generation.incrementAndGet(i);
            }
            return;
        }
        for (long u = first; u <= last; u++) {
            inFlight.incrementAndGet(stripe(u));
            generation.incrementAndGet(stripe(u));
        }
    }

    /** The write begun with the same units terminated. */
    void end(long first, long last) {
        if (last - first + 1 >= STRIPES) {
            for (int i = 0; i < STRIPES; i++) {
                generation.incrementAndGet(i);
                inFlight.decrementAndGet(i);
            }
            return;
        }
        for (long u = first; u <= last; u++) {
            generation.incrementAndGet(stripe(u));
            inFlight.decrementAndGet(stripe(u));
        }
    }

    /** The unit's generation, or -1 when a write of its stripe is in flight. */
    long snapshot(long unit) {
        int s = stripe(unit);
        long g = generation.get(s);
        return inFlight.get(s) == 0 ? g : -1;
    }

    /** Whether no write of the unit's stripe was in flight at {@code snapshot} and none began or ended since. */
    boolean unchanged(long unit, long snapshot) {
        int s = stripe(unit);
        return snapshot >= 0 && inFlight.get(s) == 0 && generation.get(s) == snapshot;
    }
}

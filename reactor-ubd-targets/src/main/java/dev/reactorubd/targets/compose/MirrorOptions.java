package dev.reactorubd.targets.compose;

import java.time.Duration;

/**
 * How a persistent mirror ({@link Backends#assembleMirror}) is assembled and run. Immutable; start from
 * {@link #defaults()}.
 *
 * @param regionBytes   the write-intent bitmap's unit for a new mirror (a positive multiple of 512; an existing
 *                      mirror keeps the one in its superblocks)
 * @param assumeCurrent the replica whose data wins when no replica is known current, or -1 (refuse instead)
 * @param clearDelay    how long a region's bit stays set after its last write before it is cleared (lazily, in
 *                      batches, after a flush of every replica)
 */
public record MirrorOptions(int regionBytes, int assumeCurrent, Duration clearDelay) {
    /** Checks the values. */
    public MirrorOptions {
        if (regionBytes < 512 || regionBytes % 512 != 0) {
            throw new IllegalArgumentException(
                    "the mirror's region must be a positive multiple of 512 bytes; was " + regionBytes);
        }
        if (assumeCurrent < -1) {
            throw new IllegalArgumentException("assume-current must name a replica (0, 1, ...); was " + assumeCurrent);
        }
        if (clearDelay == null || clearDelay.isNegative() || clearDelay.isZero()) {
            throw new IllegalArgumentException("the bitmap's clear delay must be positive; was " + clearDelay);
        }
    }

    /** {@return 64 KiB regions, no assumed-current replica, bits cleared after 2 s} */
    public static MirrorOptions defaults() {
        return new MirrorOptions(MirrorBackend.DEFAULT_REGION_BYTES, -1, Duration.ofSeconds(2));
    }

    /**
     * {@return these options with another region size}
     *
     * @param bytes a positive multiple of 512
     */
    public MirrorOptions regionBytes(int bytes) {
        return new MirrorOptions(bytes, assumeCurrent, clearDelay);
    }

    /**
     * {@return these options naming the replica whose data wins when every replica is stale} Only used when no replica
     * is known current; a replica named while another is current and it is not is refused.
     *
     * @param replica the replica index, from 0, or -1 for none
     */
    public MirrorOptions assumeCurrent(int replica) {
        return new MirrorOptions(regionBytes, replica, clearDelay);
    }

    /**
     * {@return these options with another clear delay}
     *
     * @param delay positive
     */
    public MirrorOptions clearDelay(Duration delay) {
        return new MirrorOptions(regionBytes, assumeCurrent, delay);
    }
}

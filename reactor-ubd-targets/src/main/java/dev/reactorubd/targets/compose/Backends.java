package dev.reactorubd.targets.compose;

import dev.reactorubd.server.BlockBackend;
import reactor.core.publisher.Mono;

/**
 * Backends made of backends: the entry points of the composition operators.
 *
 * <pre>{@code
 * MirrorBackend mirror = Backends.mirror(new MemoryBackend(size), nbdBackend);   // RAID-1
 * StripeBackend fast = Backends.stripe(64 << 10, diskA, diskB);                   // RAID-0, 64 KiB chunks
 * ConcatBackend big = Backends.concat(diskA, diskB);                              // end to end
 * BlockBackend served = Backends.from(nbdBackend)
 *         .cache(64 << 20).timeout(Duration.ofSeconds(5)).retry(3, Duration.ofMillis(100)).limitRate(10_000, 0);
 * }</pre>
 *
 * <p>Every backend made here is a {@link ComposableBackend}, so the decorators ({@code cache}, {@code timeout},
 * {@code retry}, {@code limitRate}, {@code faults}) chain onto it, and it can itself be a part of another (a mirror of
 * stripes, a concat of mirrors). A composite owns its parts: closing it closes them.
 */
public final class Backends {
    private Backends() {}

    /**
     * RAID-1 over {@code replicas} (at least one, at most 64, each of known size), with 64 KiB dirty regions, whose
     * health and dirty regions live in memory only: every replica is IN_SYNC when it is made. For replicas that outlive
     * the process use {@link #assembleMirror}, which records them on the replicas. See {@link MirrorBackend}.
     *
     * @param replicas the replicas, each at least as large as the mirror
     * @return the mirror, which owns the replicas
     */
    public static MirrorBackend mirror(BlockBackend... replicas) {
        return new MirrorBackend(MirrorBackend.DEFAULT_REGION_BYTES, replicas);
    }

    /**
     * RAID-1 with dirty regions of {@code regionBytes} (a positive multiple of 512). See {@link MirrorBackend}.
     *
     * @param regionBytes the unit in which writes missed by a replica are remembered and resynced
     * @param replicas the replicas, each at least as large as the mirror
     * @return the mirror, which owns the replicas
     */
    public static MirrorBackend mirror(int regionBytes, BlockBackend... replicas) {
        return new MirrorBackend(regionBytes, replicas);
    }

    /**
     * A persistent RAID-1 over {@code replicas}: each replica carries the mirror's superblock and write-intent bitmap
     * in its first {@link MirrorBackend#dataOffset()} bytes, so that the mirror reassembles from its replicas alone and
     * knows which are current after a crash or restart (docs/mirror.md). Replicas that are all blank make a new mirror
     * (replica 0, or {@link MirrorOptions#assumeCurrent} 's, is copied to the others); a blank replica among current ones
     * gets a full copy; a stale one gets the regions of the bitmap.
     *
     * @param options  the region size for a new mirror, the replica assumed current, the bitmap's clear delay
     * @param replicas the replicas, in slot order, each of known size
     * @return a Mono of the mirror (which then owns the replicas) once every superblock is written; an error ({@link
     *         MirrorAssemblyException} saying what to do) when the replicas do not make a mirror, in which case the
     *         caller still owns, and closes, the replicas
     */
    public static Mono<MirrorBackend> assembleMirror(MirrorOptions options, BlockBackend... replicas) {
        return MirrorBackend.assemble(options, replicas);
    }

    /**
     * RAID-0 over {@code parts}, interleaved in chunks of {@code chunkBytes} (a positive multiple of 512). See {@link
     * StripeBackend}.
     *
     * @param chunkBytes the bytes written to one part before moving to the next
     * @param parts the parts, in order
     * @return the stripe, which owns the parts
     */
    public static StripeBackend stripe(int chunkBytes, BlockBackend... parts) {
        return StripeBackend.of(chunkBytes, parts);
    }

    /**
     * {@code parts} end to end.
     *
     * @param parts the parts, in order
     * @return {@code parts} end to end
     * @throws IllegalArgumentException when a part does not know its size (see {@link ConcatBackend})
     */
    public static ConcatBackend concat(BlockBackend... parts) {
        return new ConcatBackend(parts);
    }

    /**
     * {@code backend} as a {@link ComposableBackend}: itself if it is one, else a wrapper that changes nothing.
     *
     * @param backend the backend that answers the requests
     * @return {@code backend} as a {@link ComposableBackend}: itself if it is one, else a wrapper that changes nothing
     */
    public static ComposableBackend from(BlockBackend backend) {
        if (backend instanceof ComposableBackend c) {
            return c;
        }
        if (backend == null) {
            throw new IllegalArgumentException("the backend is null");
        }
        return new FromBackend(backend);
    }
}

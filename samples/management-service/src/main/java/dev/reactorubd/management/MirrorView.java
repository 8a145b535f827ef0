package dev.reactorubd.management;

import dev.reactorubd.targets.compose.ReplicaState;
import java.util.List;

/**
 * A mirror of a device's target as the API shows it (JSON), read from its {@code MirrorBackend} when asked: a
 * snapshot, not updated afterwards.
 *
 * @param index         which mirror of the target this is, from 0 (a target such as {@code stripe(mirror(..),
 *                      mirror(..))} has several; inner mirrors before the ones that contain them), as in
 *                      {@code ?mirror=K} of the mirror requests
 * @param target        the mirror's spec, {@code mirror(SPEC,SPEC...)}
 * @param mirrorId      the persistent mirror's id (in every replica's superblock), or null for an in-memory mirror
 * @param events        the event counter of the last superblock round (0 for an in-memory mirror)
 * @param degraded      whether some replica is not IN_SYNC (the mirror has less redundancy than it was built with)
 * @param regionBytes   the granularity of the dirty map and of the resync copy
 * @param regions       regions of the device ({@code ceil(size / regionBytes)}): a full resync copies this many
 * @param copiedRegions regions copied by resyncs since the mirror was opened (every replica's)
 * @param replicas      the replicas, in slot order
 */
public record MirrorView(
        int index,
        String target,
        String mirrorId,
        long events,
        boolean degraded,
        int regionBytes,
        long regions,
        long copiedRegions,
        List<ReplicaView> replicas) {
    /**
     * One replica.
     *
     * @param slot          its index in the mirror, as in {@code /mirror/replicas/I/...}
     * @param target        its spec
     * @param state         IN_SYNC (serves reads), RESYNCING (gets writes, its missed regions being copied back) or
     *                      FAILED (gets nothing; {@code POST .../reinstate} brings it back)
     * @param dirtyRegions  regions recorded as written without it and not yet copied back; for a FAILED replica what
     *                      it is known to have missed so far (one whose flush failed, or that could not be read at
     *                      assembly, is copied in full on reinstate, whatever this says)
     * @param resyncPercent how much of it is current while RESYNCING ({@code 100 * (regions - dirtyRegions) /
     *                      regions}), 100 when IN_SYNC, null when FAILED
     */
    public record ReplicaView(int slot, String target, ReplicaState state, long dirtyRegions, Double resyncPercent) {}
}

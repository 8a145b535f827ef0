package dev.reactorubd.management;

import java.time.Instant;
import java.util.List;

/**
 * A device as the API shows it (JSON).
 *
 * @param id      N of {@code /dev/ublkbN}
 * @param state   CREATING, LIVE or DELETING
 * @param path    the block device
 * @param target  the target spec it serves, normalised
 * @param queues  the per-queue counts
 * @param mirrors the mirrors of its target, empty when it has none: their replicas' states, dirty regions and resync
 *                progress ({@link MirrorView})
 */
public record DeviceView(
        int id,
        String state,
        String path,
        String target,
        long sizeBytes,
        int queueCount,
        int depth,
        Instant created,
        List<QueueView> queues,
        List<MirrorView> mirrors) {
    /**
     * One queue's counts: requests answered with success and with an error, requests held now (fetch to commit),
     * and requests waiting for demand.
     */
    public record QueueView(int id, long completed, long failed, int inFlight, int waitingForDemand) {}
}

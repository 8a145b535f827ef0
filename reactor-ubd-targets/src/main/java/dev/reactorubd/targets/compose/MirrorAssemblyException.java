package dev.reactorubd.targets.compose;

import dev.reactorubd.UbdException;

/**
 * A persistent mirror refused to assemble from the replicas it was given: replicas of different mirrors, replicas out
 * of order, a replica with data but no superblock, damaged superblocks, or no replica known to be current. The message
 * names the replicas involved and says what to do (give the right replicas, zero a replica to make it blank, or name
 * the replica whose data wins with {@link MirrorOptions#assumeCurrent(int)}). Nothing was written to any replica.
 */
public final class MirrorAssemblyException extends UbdException {
    private static final long serialVersionUID = 1L;

    /**
     * A refused assembly.
     *
     * @param message what is wrong and what to do
     */
    public MirrorAssemblyException(String message) {
        super(message);
    }
}

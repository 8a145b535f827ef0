package dev.reactorubd.targets.compose;

/** The health of one replica of a {@link MirrorBackend}. */
public enum ReplicaState {
    /** Holds the same data as every other in-sync replica: gets every write and serves reads. */
    IN_SYNC,
    /**
     * Reinstated and being brought up to date by a background copy of its dirty regions: gets every write, serves no
     * read, and becomes {@link #IN_SYNC} when the copy is done.
     */
    RESYNCING,
    /**
     * A request to it failed: it gets no request until {@link MirrorBackend#reinstate reinstated}; the regions written
     * meanwhile are recorded in its dirty map.
     */
    FAILED
}

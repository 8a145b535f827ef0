package dev.reactorubd.targets.compose;

/**
 * A replica of a {@link MirrorBackend} changed state.
 *
 * @param replica the replica's index, as given to {@link Backends#mirror}
 * @param from    its state before
 * @param to      its state now
 * @param reason  why, for people: the failed request and its errno, "reinstated", "resync complete", ...
 */
public record HealthEvent(int replica, ReplicaState from, ReplicaState to, String reason) {}

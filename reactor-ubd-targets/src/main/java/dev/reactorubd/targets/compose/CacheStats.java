package dev.reactorubd.targets.compose;

/**
 * A {@link CacheBackend}'s counters, taken at one moment (each counter is read on its own, so under load they may be
 * a few requests apart).
 *
 * @param hits          reads served entirely from the cache
 * @param misses        reads that went to the backend (some block of theirs was not cached)
 * @param evictions     blocks dropped to stay within the capacity (invalidations are not counted)
 * @param cachedBytes   bytes cached now: blocks x block size
 * @param capacityBytes the most bytes the cache holds: whole blocks within the size given
 */
public record CacheStats(long hits, long misses, long evictions, long cachedBytes, long capacityBytes) {}

/**
 * Ready-made {@link dev.reactorubd.server.BlockBackend}s: {@link dev.reactorubd.targets.NullBackend} (reads zeros,
 * drops writes) and {@link dev.reactorubd.targets.MemoryBackend} (a sparse RAM disk); in {@link
 * dev.reactorubd.targets.file} a file or block device on io_uring, in {@link dev.reactorubd.targets.nbd} an NBD client
 * ({@link dev.reactorubd.targets.nbd.NbdBackend}). Backends made of backends (mirror, stripe, concat, cache, timeout,
 * retry, rate limit, fault injection) are in {@link dev.reactorubd.targets.compose}.
 */
package dev.reactorubd.targets;

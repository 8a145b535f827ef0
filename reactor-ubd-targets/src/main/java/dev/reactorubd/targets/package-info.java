/**
 * Ready-made {@link dev.reactorubd.server.BlockBackend}s: {@link dev.reactorubd.targets.NullBackend} (reads zeros,
 * drops writes) and {@link dev.reactorubd.targets.MemoryBackend} (a sparse RAM disk). Backends made of backends
 * (mirror, stripe, concat, cache, timeout, retry, rate limit, fault injection) are in {@link
 * dev.reactorubd.targets.compose}.
 */
package dev.reactorubd.targets;

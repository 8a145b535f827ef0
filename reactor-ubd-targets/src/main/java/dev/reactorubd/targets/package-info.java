/**
 * Ready-made {@link dev.reactorubd.server.BlockBackend}s: {@link dev.reactorubd.targets.NullBackend} (reads zeros,
 * drops writes) and {@link dev.reactorubd.targets.MemoryBackend} (a sparse RAM disk).
 */
package dev.reactorubd.targets;

/**
 * Ready-made {@link dev.reactorubd.server.BlockBackend}s: {@link dev.reactorubd.targets.NullBackend} (reads zeros,
 * drops writes), {@link dev.reactorubd.targets.MemoryBackend} (a sparse RAM disk), and in
 * {@link dev.reactorubd.targets.nbd} an NBD client ({@link dev.reactorubd.targets.nbd.NbdBackend}).
 */
package dev.reactorubd.targets;

/**
 * Backends composed from backends, in the spirit of nbdkit's filters: each operator wraps one or more {@link
 * dev.reactorubd.server.BlockBackend}s and changes one thing.
 *
 * <ul>
 * <li>{@link dev.reactorubd.targets.compose.Backends}: {@code mirror} (RAID-1 with health events, dirty-region
 * tracking and background resync), {@code stripe} (RAID-0), {@code concat}, and {@code from} to make any backend
 * composable.</li>
 * <li>{@link dev.reactorubd.targets.compose.ComposableBackend}: the decorators as methods: {@code cache} (a bounded
 * write-through LRU read cache), {@code timeout}, {@code retry}, {@code limitRate} (token buckets shared across
 * queues) and {@code faults} (runtime fault injection for tests).</li>
 * </ul>
 *
 * <p>Every operator keeps the {@code BlockBackend} contract: it never blocks its caller's event loop, releases every
 * buffer on every path, binds its parts to each queue (the bound view shares the operator's state), closes its parts,
 * and reports size and capabilities from them.
 */
package dev.reactorubd.targets.compose;

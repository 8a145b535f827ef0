/**
 * The test kit: {@link dev.reactorubd.testkit.VirtualDevice} plays the kernel's part for a device's queues, in
 * process, with no kernel and no root, so that backends and queue consumers can be tested with StepVerifier. It runs
 * the library's real queue code ({@link dev.reactorubd.io.UbdQueue}, {@link dev.reactorubd.server.BackendBridge})
 * on real event loops; only the transport to the kernel is replaced.
 */
package dev.reactorubd.testkit;

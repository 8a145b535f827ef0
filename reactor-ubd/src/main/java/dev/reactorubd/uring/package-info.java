/**
 * io_uring and the few system calls this library needs, through {@code java.lang.foreign}: {@link
 * dev.reactorubd.uring.Libc} (open, close, mmap, io_uring_setup, io_uring_enter), {@link
 * dev.reactorubd.uring.ControlRing} (a 128-byte-SQE ring for ublk control commands, reaped by its own thread) and
 * {@link dev.reactorubd.uring.MappedRegion} (a read-only shared mapping, such as a queue's descriptor area).
 *
 * <p>System calls here report failure kernel-style, as a negative errno, so that CQE results and syscall results
 * travel the same way up to the control plane, which turns them into typed exceptions.
 */
package dev.reactorubd.uring;

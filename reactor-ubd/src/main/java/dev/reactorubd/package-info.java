/**
 * reactor-ubd: serve Linux block devices ({@code /dev/ublkbN}) from reactive Java code through the kernel's ublk
 * driver.
 *
 * <p>Start at {@link dev.reactorubd.server.UbdServer}. The layers, from the kernel up: {@code sys} (the ublk ABI),
 * {@code uring} (system calls, the control ring), {@code ctrl} (the control plane), {@code io} (queues and
 * requests), {@code server} (devices and backends), {@code testkit} (a kernel-free virtual device). This package
 * holds the errors every layer signals: {@link dev.reactorubd.UbdException} and its subclasses.
 */
package dev.reactorubd;

/**
 * Queues and the IO requests they carry.
 *
 * <p>A {@link dev.reactorubd.io.UbdQueue} turns one ublk queue into a {@code Flux} of {@link
 * dev.reactorubd.io.IoRequest}s that honours demand; each request is answered once, from any thread, with
 * {@code complete}, {@code complete(ByteBuf)} or {@code fail}. The queue's logic runs on one event loop, which is
 * what the kernel requires; it talks to the kernel through a {@link dev.reactorubd.io.QueueTransport}: {@link
 * dev.reactorubd.io.KernelQueueTransport} (Netty's io_uring, USER_COPY) in production, and the test kit's virtual
 * transport in tests.
 */
package dev.reactorubd.io;

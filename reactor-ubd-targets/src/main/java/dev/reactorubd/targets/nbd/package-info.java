/**
 * An NBD client target: {@link dev.reactorubd.targets.nbd.NbdBackend} serves a block device from an export of an NBD
 * server (nbd-server, qemu-nbd, nbdkit...) over TCP or a Unix socket, named by an
 * {@link dev.reactorubd.targets.nbd.NbdUri} and tuned by {@link dev.reactorubd.targets.nbd.NbdOptions} (timeouts and
 * the reconnect policy). Handshake failures are {@link dev.reactorubd.targets.nbd.NbdException}s; request failures are
 * {@link dev.reactorubd.UbdIoException}s with the errno the reader or writer sees.
 */
package dev.reactorubd.targets.nbd;

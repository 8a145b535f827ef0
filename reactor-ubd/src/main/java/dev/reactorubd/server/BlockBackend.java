package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.UbdQueue;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.util.Set;
import reactor.core.publisher.Mono;

/**
 * A block device's storage, answering each request with a {@link Mono}.
 *
 * <h2>Contract</h2>
 * Methods are called on the queue's event loop and must return at once: do the work asynchronously (an RPC, a
 * {@code subscribeOn} for blocking storage) and signal the Mono from any thread. A Mono that errors fails that
 * request alone, with the errno of a {@link UbdIoException} or else EIO; so does an exception thrown by the method.
 * The device stays live. Offsets and lengths are in bytes and multiples of the logical block size.
 *
 * <h2>Buffers</h2>
 * {@link #read} returns a buffer with exactly {@code length} readable bytes, which the library releases after
 * copying it to the kernel (an empty Mono or a wrong length fails the read with EIO). {@link #write}'s data is
 * valid until its Mono terminates or is cancelled; {@code retain()} it to keep it longer. WRITE data is read into buffers of
 * {@link #allocator()}, so a backend decides where its data lives; nothing is allocated per tag or per device.
 *
 * <h2>Cancellation</h2>
 * A request the backend does not answer within the server's request timeout is answered for it (ETIMEDOUT) and its
 * Mono is cancelled; the tag then serves the kernel's next request. A cancelled request is over for the backend: it
 * starts nothing more of it (no retry, no re-send after a reconnect, no rest of a short transfer), and {@link
 * #write}'s data is valid only until the cancellation ({@code retain()} it to finish an operation already under
 * way). An operation already on its way to the store may still land; a backend makes sure it cannot land after a
 * later write of the same range (it waits for it first, or resets the connection it was sent on) and says so.
 *
 * <h2>Queues</h2>
 * A simple backend serves every queue as it is. A backend that issues its own IO on the queue's event loop (the file
 * target's io_uring operations, a network connection per queue) overrides {@link #bind}: the server calls it once per
 * queue before the device starts, and serves that queue from the backend it returns.
 *
 * <h2>Ownership</h2>
 * The application owns its backends: closing a device does not close its backend, so one backend can outlive a
 * device, or serve the next one. {@link #close()} releases what a backend holds (files, connections); backends made of
 * backends close their parts.
 */
public interface BlockBackend {
    /** Optional operations a backend serves; the device advertises them to the kernel. */
    enum Capability {
        /** The backend has a volatile cache: FLUSH requests reach {@link #flush()}. */
        FLUSH,
        /** Writes can be forced durable one by one (FUA); needs FLUSH. */
        FUA,
        /** {@link #discard} frees ranges. */
        DISCARD,
        /** {@link #writeZeroes} zeroes ranges. */
        WRITE_ZEROES,
        /**
         * The backends {@link #bind} returns serve requests in place ({@link ZeroCopyBackend}): devices are then added
         * with the kernel's zero copy where it has it (AUTO_BUF_REG, Linux 6.16).
         */
        ZERO_COPY
    }

    /**
     * Reads {@code length} bytes at {@code offset}. Called on the queue's event loop: return at once and signal the
     * Mono from any thread.
     *
     * @param offset the byte offset on the device, a multiple of the logical block size
     * @param length the bytes to read, a multiple of the logical block size, at most the device's largest request
     * @param allocator the queue's allocator, for backends without a pool of their own
     * @return a Mono of a buffer with exactly {@code length} readable bytes, whose ownership passes to the library (it
     *         releases the buffer after copying it to the kernel); an error, an empty Mono or a wrong length fails the
     *         request (EIO, or the errno of a {@link UbdIoException})
     */
    Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator);

    /**
     * Writes {@code data} (its readable bytes) at {@code offset}; durable on completion when {@code fua}. Called on the
     * queue's event loop: return at once.
     *
     * @param offset the byte offset on the device, a multiple of the logical block size
     * @param data the bytes to write, in a buffer of {@link #allocator()}; valid until the Mono terminates, so {@code
     *         retain()} it to keep it longer; do not release it otherwise
     * @param fua force unit access: the data must be durable when the Mono completes (only with {@link Capability#FUA})
     * @return a Mono that completes once the data is written, or signals the error that fails the request
     */
    Mono<Void> write(long offset, ByteBuf data, boolean fua);

    /**
     * Makes every completed write durable. Called only with {@link Capability#FLUSH}.
     *
     * @return a Mono that completes once every write completed before the call is durable; the default completes at
     *         once
     */
    default Mono<Void> flush() {
        return Mono.empty();
    }

    /**
     * Discards a range: its contents become undefined (a hole, typically). Called only with {@link Capability#DISCARD}.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to discard
     * @return a Mono that completes once the range is discarded; the default fails with EOPNOTSUPP
     */
    default Mono<Void> discard(long offset, long length) {
        return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, "discard is not supported by " + this));
    }

    /**
     * Zeroes a range; {@code noUnmap} asks to keep it allocated. Called only with {@link Capability#WRITE_ZEROES}.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to zero
     * @param noUnmap keep the range allocated (do not punch a hole)
     * @return a Mono that completes once the range reads as zeros; the default fails with EOPNOTSUPP
     */
    default Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, "write-zeroes is not supported by " + this));
    }

    /**
     * What this backend serves beyond read and write. The server advertises them to the kernel (a volatile cache for
     * {@link Capability#FLUSH}, FUA, discard and write-zeroes limits), so that it sends only the requests the backend
     * serves.
     *
     * @return the capabilities; none by default
     */
    default Set<Capability> capabilities() {
        return Set.of();
    }

    /**
     * Where the data of WRITE requests is put before {@link #write} sees it, so that a backend decides where its data
     * lives (aligned memory for O_DIRECT, say). Called once per queue, before the device starts.
     *
     * @return an allocator of direct buffers; Netty's pooled direct allocator by default
     */
    default ByteBufAllocator allocator() {
        return PooledByteBufAllocator.DEFAULT;
    }

    /**
     * The bytes this backend stores, or {@link #UNKNOWN_SIZE} when it does not know (the device spec decides).
     *
     * @return the size in bytes, or {@link #UNKNOWN_SIZE}
     */
    default long size() {
        return UNKNOWN_SIZE;
    }

    /** What {@link #size()} answers for a backend that does not know its size. */
    long UNKNOWN_SIZE = -1;

    /**
     * The backend that serves {@code queue}'s requests; called once per queue, before the device starts, on any thread.
     * The default is this backend itself. A backend that needs the queue's event loop ({@code queue.loop()}) returns a
     * backend bound to it, whose methods are then called only on that loop; it releases what it took for the queue when
     * {@code queue.onTerminated()} completes. An error fails the device's start.
     *
     * @param queue the queue to serve, with its event loop and allocator
     * @return a Mono of the backend for that queue
     */
    default Mono<BlockBackend> bind(UbdQueue queue) {
        return Mono.just(this);
    }

    /**
     * Releases what the backend holds (files, connections; the parts of a composed backend). Requests still in flight
     * fail. The default does nothing. Idempotent.
     *
     * @return a Mono that completes once everything is released
     */
    default Mono<Void> close() {
        return Mono.empty();
    }
}

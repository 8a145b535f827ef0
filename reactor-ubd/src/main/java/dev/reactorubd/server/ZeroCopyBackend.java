package dev.reactorubd.server;

import dev.reactorubd.IoOp;
import dev.reactorubd.io.IoRequest;
import reactor.core.publisher.Mono;

/**
 * A backend that serves READ and WRITE requests in place: it moves the data between its storage and the request's own
 * pages, which the kernel registered in the buffer table of the queue loop's io_uring (ublk's zero copy,
 * {@code UBLK_F_AUTO_BUF_REG}, Linux 6.16), with {@code IORING_OP_READ_FIXED} / {@code IORING_OP_WRITE_FIXED} (or a
 * socket operation from a fixed buffer) submitted on that same ring. No byte passes through a buffer of the
 * application's.
 *
 * <h2>When it is used</h2>
 * A backend whose {@link #capabilities()} hold {@link BlockBackend.Capability#ZERO_COPY} asks for it: the server then
 * adds devices with AUTO_BUF_REG where the kernel offers it, and each queue whose bound backend ({@link #bind}) is a
 * {@code ZeroCopyBackend} hands it requests with a {@link IoRequest#registeredBuffer()}. Requests the kernel could not
 * register (it falls back), and every request where the kernel or the event loop offers no zero copy, reach
 * {@link #read} and {@link #write} with copied data as usual: a zero-copy backend serves both ways.
 *
 * <h2>Contract</h2>
 * As for {@link BlockBackend}: called on the queue's event loop, return at once. The buffer index is valid only for
 * operations on that loop's ring, and only until the Mono terminates (the request is then answered, and the kernel
 * drops the registration with its next command for the tag). Move exactly {@code length} bytes, from offset 0 of the
 * registered buffer; a Mono that errors fails the request alone.
 */
public interface ZeroCopyBackend extends BlockBackend {
    /**
     * Whether requests of {@code op} (READ or WRITE) with registered pages are handed to this backend in place ({@link
     * #readInto}, {@link #writeFrom}); the others reach {@link #read} and {@link #write} with copied data. Asked once,
     * when the backend is attached to a queue. Both by default; a network backend may take only WRITEs in place (it
     * sends their pages to its socket) while its READ replies arrive in buffers of its own.
     *
     * @param op {@link IoOp#READ} or {@link IoOp#WRITE}
     * @return whether they are served in place
     */
    default boolean servesInPlace(IoOp op) {
        return true;
    }

    /**
     * Reads {@code length} bytes at {@code offset} of the store into the registered buffer of a READ request.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to read: the request's length
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages
     * @return a Mono that completes once every byte is in the request's pages
     */
    Mono<Void> readInto(long offset, int length, int bufferIndex);

    /**
     * Writes {@code length} bytes from the registered buffer of a WRITE request at {@code offset} of the store.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to write: the request's length
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages
     * @param fua force unit access: the data must be durable when the Mono completes
     * @return a Mono that completes once every byte is written
     */
    Mono<Void> writeFrom(long offset, int length, int bufferIndex, boolean fua);

    /**
     * {@link #readInto(long, int, int)}, with the request's commit offered for linking: a backend that reads all
     * {@code length} bytes with one io_uring operation on the loop's ring may submit it linked to the commit ({@code
     * LoopIo.submitLinked(..., linkedCommit)}), which then runs in the kernel as soon as the read is done, in the same
     * {@code io_uring_enter} (see {@link IoRequest#linkedCommit()}). The Mono is answered as usual either way. By
     * default the link is not used.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to read: the request's length
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages
     * @param linkedCommit what enqueues the request's commit right behind the backend's operation, or null
     * @return a Mono that completes once every byte is in the request's pages
     */
    default Mono<Void> readInto(long offset, int length, int bufferIndex, Runnable linkedCommit) {
        return readInto(offset, length, bufferIndex);
    }

    /**
     * {@link #writeFrom(long, int, int, boolean)}, with the request's commit offered for linking, as for {@link
     * #readInto(long, int, int, Runnable)}.
     *
     * @param offset the byte offset on the device
     * @param length the bytes to write: the request's length
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages
     * @param fua force unit access: the data must be durable when the Mono completes
     * @param linkedCommit what enqueues the request's commit right behind the backend's operation, or null
     * @return a Mono that completes once every byte is written
     */
    default Mono<Void> writeFrom(long offset, int length, int bufferIndex, boolean fua, Runnable linkedCommit) {
        return writeFrom(offset, length, bufferIndex, fua);
    }
}

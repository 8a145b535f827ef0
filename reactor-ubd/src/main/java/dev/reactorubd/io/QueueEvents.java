package dev.reactorubd.io;

/**
 * What a {@link QueueTransport} reports to its queue: a request fetched, its data copied, its tag given back, its
 * pages free again. The queue hands it to the transport in {@link QueueTransport#fetchAll}; nothing else can reach
 * it. Every method is called on the queue's event loop.
 *
 * <p>Part of the transport SPI, with its two implementations in this library ({@link KernelQueueTransport} and the
 * test kit's virtual device): applications neither implement nor call it.
 */
public interface QueueEvents {
    /**
     * The kernel put a request in {@code tag}'s descriptor, and perhaps registered its pages in the loop ring's buffer
     * table. A READ or WRITE whose pages are registered skips the copy when the queue {@link UbdQueue#serveInPlace
     * serves in place}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param opFlags the descriptor's {@code op_flags}
     * @param offset the byte offset on the device
     * @param length the length in bytes
     * @param bufferIndex the slot of the loop ring's buffer table holding the request's pages, or -1 for none
     */
    void onFetched(int tag, int opFlags, long offset, int length, int bufferIndex);

    /**
     * The data of the WRITE in {@code tag} was copied in: {@code res} bytes, or {@code -errno}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param res the result: a byte count, or {@code -errno}
     */
    void onCopiedIn(int tag, int res);

    /**
     * The data of the READ in {@code tag} was copied out: {@code res} bytes, or {@code -errno}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param res the result: a byte count, or {@code -errno}
     */
    void onCopiedOut(int tag, int res);

    /**
     * The kernel gave {@code tag} back for good (the device is stopping). The queue ends once every tag is back.
     *
     * @param tag the request tag, from 0 to depth - 1
     */
    void onAborted(int tag);

    /**
     * The transport failed for good: the queue's Flux signals the error and the queue ends.
     *
     * @param error the error
     */
    void onTransportError(Throwable error);

    /**
     * The last operation naming the registered pages of {@code tag}'s answered request is back: its held commit goes
     * (see {@link QueueTransport#retireBuffer}).
     *
     * @param tag the request tag, from 0 to depth - 1
     */
    void onBufferIdle(int tag);

    /**
     * The linked commit of {@code tag} was cancelled (the operation it followed failed or fell short, and the backend
     * goes on or fails the request): the answer is committed the usual way.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @return whether {@code tag} had a linked commit pending; otherwise the cancellation is not the queue's doing
     */
    boolean onLinkedCommitCancelled(int tag);
}

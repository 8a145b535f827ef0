package dev.reactorubd.io;

import io.netty.buffer.ByteBuf;

/**
 * What a {@link UbdQueue} needs from below: fetching requests, copying their data, committing results. Every
 * method is called on the queue's event loop, and the transport reports back, on that loop too, to the {@link
 * QueueEvents} the queue hands it in {@link #fetchAll}.
 *
 * <p>An SPI with two implementations: {@link KernelQueueTransport} for the ublk driver, and the test kit's
 * virtual device. Applications do not implement it.
 */
public interface QueueTransport {
    /**
     * Issues FETCH for every tag. Requests then arrive through {@link QueueEvents#onFetched}, and everything else this
     * transport reports goes to {@code events} too.
     *
     * @param events where this transport reports to, from now on: the queue's tag engine
     */
    void fetchAll(QueueEvents events);

    /**
     * Copies the data of the WRITE request of {@code tag} into {@code dst} ({@code length} bytes at its memory
     * address); then calls {@link QueueEvents#onCopiedIn} with the bytes copied or {@code -errno}.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param dst a contiguous direct buffer of at least {@code length} writable bytes
     * @param length the length in bytes
     */
    void copyIn(int tag, ByteBuf dst, int length);

    /**
     * Copies {@code length} bytes of {@code src} (a direct buffer) into the READ request of {@code tag}; then calls
     * {@link QueueEvents#onCopiedOut} with the bytes copied or {@code -errno}. {@code src} stays valid until then.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param src a contiguous direct buffer holding the data
     * @param length the length in bytes
     */
    void copyOut(int tag, ByteBuf src, int length);

    /**
     * Copies a READ's data that is in several pieces (a composite buffer, as a striping backend answers) straight from
     * its pieces, if this transport can: then it calls {@link QueueEvents#onCopiedOut} as {@link #copyOut} does, and
     * {@code src} stays valid until then. Otherwise it returns false at once, and the queue gathers the pieces into one
     * buffer for {@link #copyOut}. None can by default.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param src a buffer whose readable bytes are not at one native address
     * @param length the length in bytes
     * @return whether the copy was taken on
     */
    default boolean copyOutVectored(int tag, ByteBuf src, int length) {
        return false;
    }

    /**
     * Whether a request's commit may be linked behind the operation that serves it in place ({@link
     * IoRequest#linkedCommit()}): only where requests come with registered pages on a ring this transport submits
     * to, and a linked commit that is cancelled reaches {@link QueueEvents#onLinkedCommitCancelled}. None can by default.
     *
     * @return whether {@link #commitAndFetch} may be enqueued linked behind a backend's operation
     */
    default boolean canLinkCommit() {
        return false;
    }

    /**
     * A request served in place now holds its tag's registered pages: operations naming them may go. Nothing to do
     * where requests come without registered pages (the default).
     *
     * @param tag the request tag, from 0 to depth - 1
     */
    default void holdBuffer(int tag) {}

    /**
     * The request of {@code tag} served in place was answered: no operation may name its registered pages any more.
     * Returns whether none still does (in the kernel, or waiting to be submitted), so that it may be committed now;
     * otherwise the transport calls {@link QueueEvents#onBufferIdle} once the last one is back, and the commit waits for
     * that, since committing gives the slot to the tag's next request. True by default.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @return whether the request may be committed now
     */
    default boolean retireBuffer(int tag) {
        return true;
    }

    /**
     * Commits {@code result} (bytes, 0, or {@code -errno}) for {@code tag} and fetches its next request.
     *
     * @param tag the request tag, from 0 to depth - 1
     * @param result the result: a byte count or 0 on success, or {@code -errno}
     */
    void commitAndFetch(int tag, int result);
}

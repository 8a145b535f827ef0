package dev.reactorubd.io;

import io.netty.buffer.ByteBuf;

/**
 * What a {@link UbdQueue} needs from below: fetching requests, copying their data, committing results. Every
 * method is called on the queue's event loop, and every callback into the queue ({@link UbdQueue#onFetched},
 * {@link UbdQueue#onCopiedIn}, {@link UbdQueue#onCopiedOut}, {@link UbdQueue#onAborted}) must be made there too.
 *
 * <p>An SPI with two implementations: {@link KernelQueueTransport} for the ublk driver, and the test kit's
 * virtual device. Applications do not implement it.
 */
public interface QueueTransport {
    /** Issues FETCH for every tag. Requests then arrive through {@link UbdQueue#onFetched}. */
    void fetchAll();

    /**
     * Copies the data of the WRITE request of {@code tag} into {@code dst} ({@code length} bytes at its memory
     * address); then calls {@link UbdQueue#onCopiedIn} with the bytes copied or {@code -errno}.
     */
    void copyIn(int tag, ByteBuf dst, int length);

    /**
     * Copies {@code length} bytes of {@code src} (a direct buffer) into the READ request of {@code tag}; then calls
     * {@link UbdQueue#onCopiedOut} with the bytes copied or {@code -errno}. {@code src} stays valid until then.
     */
    void copyOut(int tag, ByteBuf src, int length);

    /** Commits {@code result} (bytes, 0, or {@code -errno}) for {@code tag} and fetches its next request. */
    void commitAndFetch(int tag, int result);
}

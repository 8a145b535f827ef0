package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import reactor.core.publisher.Mono;

/**
 * The checks every {@link BlockBackend} makes before it touches its store, with the errors a caller can act on: a
 * range outside the store (EINVAL) and a change to a read-only store (EROFS). The server never sends such requests
 * for a device whose spec matches its backend; a backend called directly, or composed into another one, still gets
 * them, and must refuse them rather than read or write out of bounds.
 *
 * <p>Stateless; callable from any thread, event loops included.
 */
public final class RequestChecks {
    private RequestChecks() {}

    /**
     * The error for a range that is not inside {@code [0, size)}, or null when it is. Overflow-safe: a range near
     * {@code Long.MAX_VALUE} whose end would wrap around is refused too.
     *
     * @param size the store's size in bytes, or {@link BlockBackend#UNKNOWN_SIZE} (then only negatives are refused)
     * @param offset the request's first byte
     * @param length its byte count
     * @param store the store, named in the message
     * @return an EINVAL error naming the range and the size, or null
     */
    public static UbdIoException outOfRange(long size, long offset, long length, Object store) {
        // Not offset + length > size: near Long.MAX_VALUE the sum overflows to a negative that passes.
        if (offset < 0 || length < 0 || (size != BlockBackend.UNKNOWN_SIZE && offset > size - length)) {
            return new UbdIoException(
                    Errno.EINVAL, "range " + offset + "+" + length + " is beyond the " + size + " bytes of " + store);
        }
        return null;
    }

    /**
     * {@link #outOfRange(long, long, long, Object)} as a Mono: its error, or null when the range is inside.
     *
     * @param <T> the Mono's type
     * @param size the store's size in bytes, or {@link BlockBackend#UNKNOWN_SIZE}
     * @param offset the request's first byte
     * @param length its byte count
     * @param store the store, named in the message
     * @return a Mono of the EINVAL error, or null
     */
    public static <T> Mono<T> checkRange(long size, long offset, long length, Object store) {
        UbdIoException e = outOfRange(size, offset, length, store);
        return e == null ? null : Mono.error(e);
    }

    /**
     * The error for a change ({@code what}: a write, discard or zeroing) to a read-only store.
     *
     * @param what the refused operation, for the message
     * @param store the store, named in the message
     * @return an EROFS error that says to serve the store with a read-only device
     */
    public static UbdIoException readOnly(String what, Object store) {
        return new UbdIoException(
                Errno.EROFS, what + " refused: " + store + " is read-only (serve it with a " + "read-only DeviceSpec)");
    }
}

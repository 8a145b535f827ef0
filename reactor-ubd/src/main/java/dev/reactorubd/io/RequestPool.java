package dev.reactorubd.io;

/**
 * One {@link IoRequest} object per tag, reset for each of the tag's requests, so that a request allocates nothing
 * ({@link UbdQueue#recycleRequests}). On the queue's loop only; the objects are made with each tag's first request.
 */
final class RequestPool {
    private final IoRequest[] perTag;

    RequestPool(int depth) {
        perTag = new IoRequest[depth];
    }

    /** {@return {@code tag}'s request object, reset to the request the kernel just handed over} */
    IoRequest take(UbdQueue queue, int tag, int opFlags, long offset, int length) {
        IoRequest r = perTag[tag];
        if (r == null) {
            r = perTag[tag] = new IoRequest(queue, tag, opFlags, offset, length);
        } else {
            r.reset(opFlags, offset, length);
        }
        return r;
    }
}

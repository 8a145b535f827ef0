package dev.reactorubd.io;

import java.util.Arrays;

/**
 * The results of requests served in place that were answered while operations naming their registered pages were
 * still in flight: each is committed once those are back ({@link QueueEvents#onBufferIdle}), since the commit hands
 * the slot to the tag's next request. On the queue's loop only; made with the first such answer.
 */
final class HeldCommits {
    /** No commit held for the tag. */
    static final int NONE = Integer.MIN_VALUE;

    private final int[] result;

    HeldCommits(int depth) {
        result = new int[depth];
        Arrays.fill(result, NONE);
    }

    void hold(int tag, int res) {
        result[tag] = res;
    }

    /** {@return the result held for {@code tag}, no longer held, or {@link #NONE}} */
    int release(int tag) {
        int res = result[tag];
        result[tag] = NONE;
        return res;
    }
}

package dev.reactorubd.io;

import java.util.function.IntConsumer;

/**
 * Where each tag's linked commit stands: the state machine of a request served in place whose COMMIT_AND_FETCH the
 * kernel runs linked behind the backend's one operation ({@link IoRequest#linkedCommit()}). Such a commit may go
 * through before the backend answers (then the tag's next request can arrive first, and waits here), or be cancelled
 * because the operation fell short (then the answer is committed the usual way). On the queue's loop only; made with
 * a queue's first link, so a queue that never links holds none of it.
 *
 * <pre>
 * NONE --enqueued--> PENDING --answered--> ANSWERED --next fetch--> NONE (the link committed the answer)
 *                       |                      '--cancelled--> NONE (commit the held answer)
 *                       |--next fetch--> FETCHED_EARLY --answered--> NONE (take the stashed request)
 *                       '--cancelled--> NONE (the answer, when it comes, is committed the usual way)
 * </pre>
 */
final class LinkedCommits {
    private static final byte NONE = 0;
    /** The commit is linked behind the backend's operation; neither the answer nor the commit's fate is known. */
    private static final byte PENDING = 1;
    /** The request was answered (its result held) while its linked commit was pending. */
    private static final byte ANSWERED = 2;
    /** The linked commit went through and the tag's next request arrived before the answer (stashed meanwhile). */
    private static final byte FETCHED_EARLY = 3;

    /** What {@link #cancel} found: no link of ours. */
    static final int NOT_LINKED = 0;
    /** What {@link #cancel} found: a pending link whose request is not answered yet. */
    static final int CANCELLED = 1;
    /** What {@link #cancel} found: a pending link whose request was answered: {@link #heldResult} is to commit. */
    static final int CANCELLED_ANSWERED = 2;

    /** A request of a tag that arrived before the tag's previous request was answered. */
    record Fetch(int opFlags, long offset, int length, int bufferIndex) {}

    private final byte[] state;
    private final int[] heldResult;
    private final Fetch[] earlyFetch;
    private final Runnable[] linkers;
    /** Links enqueued less those cancelled. Written on the loop only, read from any thread. */
    private volatile long count;

    /** Enqueues a tag's linked commit: what each tag's linker runs. */
    private final IntConsumer enqueue;

    LinkedCommits(int depth, IntConsumer enqueue) {
        this.enqueue = enqueue;
        state = new byte[depth];
        heldResult = new int[depth];
        earlyFetch = new Fetch[depth];
        linkers = new Runnable[depth];
    }

    /** {@return the runnable that enqueues {@code tag}'s linked commit, made once per tag} */
    Runnable linker(int tag) {
        Runnable l = linkers[tag];
        if (l == null) {
            l = linkers[tag] = () -> enqueue.accept(tag);
        }
        return l;
    }

    /** {@return whether {@code tag} may link its commit now (it has no link), which it then has: PENDING} */
    boolean begin(int tag) {
        if (state[tag] != NONE) {
            return false;
        }
        state[tag] = PENDING;
        count++;
        return true;
    }

    /**
     * The kernel cancelled {@code tag}'s linked commit.
     *
     * @return {@link #NOT_LINKED}, {@link #CANCELLED} or {@link #CANCELLED_ANSWERED}
     */
    int cancel(int tag) {
        byte s = state[tag];
        if (s != PENDING && s != ANSWERED) {
            return NOT_LINKED;
        }
        state[tag] = NONE;
        count--;
        return s == ANSWERED ? CANCELLED_ANSWERED : CANCELLED;
    }

    /** {@return the result of {@code tag}'s request answered while its link was pending} */
    int heldResult(int tag) {
        return heldResult[tag];
    }

    /**
     * {@code tag}'s next request was fetched. {@return whether it must wait (stashed) because the previous request,
     * whose link committed it, is not answered yet}; otherwise the tag has no link any more.
     */
    boolean fetched(int tag, int opFlags, long offset, int length, int bufferIndex) {
        byte s = state[tag];
        if (s == NONE) {
            return false;
        }
        if (s == PENDING) {
            state[tag] = FETCHED_EARLY;
            earlyFetch[tag] = new Fetch(opFlags, offset, length, bufferIndex);
            return true;
        }
        state[tag] = NONE; // answered, and committed by the link
        return false;
    }

    /** {@return whether {@code tag} has a link under way, so that its answer is the link's to commit} */
    boolean linked(int tag) {
        return state[tag] != NONE;
    }

    /**
     * {@code tag}'s request was answered with {@code result} while linked. {@return the tag's next request, fetched
     * early, to take now; or null: the result is held, in case the link is cancelled}
     */
    Fetch answered(int tag, int result) {
        if (state[tag] == PENDING) {
            state[tag] = ANSWERED;
            heldResult[tag] = result;
        } else if (state[tag] == FETCHED_EARLY) {
            state[tag] = NONE;
            Fetch f = earlyFetch[tag];
            earlyFetch[tag] = null;
            return f;
        }
        return null;
    }

    /** The kernel gave {@code tag} back for good: no link of it will complete. */
    void aborted(int tag) {
        state[tag] = NONE;
    }

    /** {@return links enqueued, less those cancelled; from any thread} */
    long count() {
        return count;
    }
}

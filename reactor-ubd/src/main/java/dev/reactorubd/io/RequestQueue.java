package dev.reactorubd.io;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.AbstractQueue;
import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * The requests of one queue waiting for their subscriber's demand: a bounded single-producer, single-consumer array
 * queue (the producer is the queue's loop; the consumer is whichever thread drains the sink, one at a time), with room
 * for every tag. Offers and polls allocate nothing.
 *
 * <p>Why not Reactor's own: its array queue pads its indices against false sharing, about 850 bytes per queue, which
 * is most of what an idle device costs beyond its request slots (see docs/performance.md, "Memory per device"); a
 * queue that sees at most one request per tag, and with the server's subscriber none at all beyond a loop turn, does
 * not need that padding.
 */
final class RequestQueue extends AbstractQueue<IoRequest> {
    private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(IoRequest[].class);
    private final IoRequest[] slots;
    private final int mask;
    private volatile long produced;
    private volatile long consumed;

    /**
     * @param capacity the most requests held at once: the queue's depth
     */
    RequestQueue(int capacity) {
        int size = Integer.highestOneBit(Math.max(1, capacity - 1)) << 1;
        slots = new IoRequest[Math.max(1, capacity == 1 ? 1 : size)];
        mask = slots.length - 1;
    }

    @Override
    public boolean offer(IoRequest r) {
        if (r == null) {
            throw new NullPointerException("request");
        }
        long p = produced;
        int i = (int) p & mask;
        if (SLOT.getAcquire(slots, i) != null) {
            return false; // full
        }
        SLOT.setRelease(slots, i, r);
        produced = p + 1;
        return true;
    }

    @Override
    public IoRequest poll() {
        long c = consumed;
        int i = (int) c & mask;
        IoRequest r = (IoRequest) SLOT.getAcquire(slots, i);
        if (r == null) {
            return null;
        }
        SLOT.setRelease(slots, i, null);
        consumed = c + 1;
        return r;
    }

    @Override
    public IoRequest peek() {
        return (IoRequest) SLOT.getAcquire(slots, (int) consumed & mask);
    }

    @Override
    public boolean isEmpty() {
        return peek() == null;
    }

    /** {@return the requests held, a sample from any thread} */
    @Override
    public int size() {
        long c = consumed;
        long p = produced;
        return (int) Math.max(0, Math.min(slots.length, p - c));
    }

    /** Not supported: nothing in Reactor's sink walks its queue. */
    @Override
    public Iterator<IoRequest> iterator() {
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                return false;
            }

            @Override
            public IoRequest next() {
                throw new NoSuchElementException();
            }
        };
    }
}

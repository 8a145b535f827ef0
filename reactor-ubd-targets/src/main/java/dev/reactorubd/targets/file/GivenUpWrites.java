package dev.reactorubd.targets.file;

import java.util.ArrayList;
import java.util.List;

/**
 * Writes whose caller gave them up (their Mono was cancelled, by the server's request timeout say) while their io_uring
 * operation was still in the kernel: it may still land, so a later write of an overlapping range waits until it is
 * back rather than risk being overwritten by it. Shared by every queue of one file; thread-safe, and one volatile read
 * on the write path while there are none (the usual case).
 */
final class GivenUpWrites {
    private record Range(long offset, long length) {
        boolean overlaps(long o, long n) {
            return o < offset + length && offset < o + n;
        }
    }

    private record Waiter(long offset, long length, Runnable start) {}

    private final List<Range> inKernel = new ArrayList<>();
    private final List<Waiter> waiters = new ArrayList<>();
    private volatile int count;

    /** A write of {@code [offset, offset + length)} was given up with its operation in the kernel; returns its key. */
    Object add(long offset, long length) {
        Range r = new Range(offset, length);
        synchronized (this) {
            inKernel.add(r);
            count = inKernel.size();
        }
        return r;
    }

    /** The given-up write {@code key} is back from the kernel: writes that waited for it, and for no other, start. */
    void remove(Object key) {
        List<Runnable> go = new ArrayList<>();
        synchronized (this) {
            inKernel.remove(key);
            count = inKernel.size();
            waiters.removeIf(w -> {
                if (overlapsAny(w.offset, w.length)) {
                    return false;
                }
                go.add(w.start);
                return true;
            });
        }
        go.forEach(Runnable::run);
    }

    /** Runs {@code start} now, or once no given-up write overlapping the range is in the kernel any more. */
    void whenClear(long offset, long length, Runnable start) {
        if (count == 0) {
            start.run();
            return;
        }
        synchronized (this) {
            if (overlapsAny(offset, length)) {
                waiters.add(new Waiter(offset, length, start));
                return;
            }
        }
        start.run();
    }

    private boolean overlapsAny(long offset, long length) {
        for (Range r : inKernel) {
            if (r.overlaps(offset, length)) {
                return true;
            }
        }
        return false;
    }
}

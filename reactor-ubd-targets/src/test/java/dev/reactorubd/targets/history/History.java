package dev.reactorubd.targets.history;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The history of one device's writes and flushes, at 512-byte sector granularity, and the rules every read must obey:
 * the judge of the history checker.
 *
 * <p>Each write stamps every sector it covers with its own id and the sector's number (see {@link #stamp}), so a read
 * says which write each sector came from. Time is a logical clock: an operation gets a tick when it is issued and
 * another when its answer arrives. A read of a sector may return the value of any write that is not <em>superseded</em>
 * at the read's start, and that was issued before the read ended; the sector's initial zeros count as a write that
 * ended at time 0. A write is superseded once a write of that sector issued after it had ended was acknowledged, all
 * before the read started. A failed or timed-out write may or may not have landed, so it stays possible until
 * superseded; what it must never do is land after a later acknowledged write, which this rule catches. A read that
 * overlaps a write of the sector may also find it torn (part old, part new); outside such an overlap a torn sector is
 * a violation.
 *
 * <p>After a crash (the server killed and the store reopened), only durable writes supersede: those acknowledged
 * before a FLUSH was issued that then completed ({@link #checkAfterCrash}).
 *
 * <p>Thread-safe: writes and reads are recorded from the queues' threads.
 */
final class History {
    static final int SECTOR = 512;
    /** The value of a sector nobody wrote: all zeros. */
    static final long INITIAL = 0;

    /** One write: the sectors it covers, when it was issued and answered, and whether it was acknowledged. */
    static final class Write {
        final long id;
        final long firstSector;
        final int sectors;
        final long issued;
        volatile long answered = Long.MAX_VALUE;
        volatile boolean acknowledged;

        Write(long id, long firstSector, int sectors, long issued) {
            this.id = id;
            this.firstSector = firstSector;
            this.sectors = sectors;
            this.issued = issued;
        }

        @Override
        public String toString() {
            return "w" + id + "[" + issued + ".." + (answered == Long.MAX_VALUE ? "?" : answered) + ", "
                    + (answered == Long.MAX_VALUE ? "in flight" : acknowledged ? "ok" : "failed") + "]";
        }
    }

    private final AtomicLong clock = new AtomicLong();
    private final AtomicLong ids = new AtomicLong();
    private final List<Write>[] bySector;
    /** Ticks at which a FLUSH that then completed was issued. */
    private final List<Long> completedFlushIssues = new ArrayList<>();

    @SuppressWarnings("unchecked")
    History(long deviceBytes) {
        bySector = new List[(int) (deviceBytes / SECTOR)];
        for (int i = 0; i < bySector.length; i++) {
            bySector[i] = new ArrayList<>(4);
        }
    }

    long tick() {
        return clock.incrementAndGet();
    }

    int sectors() {
        return bySector.length;
    }

    /** Records a write of {@code length} bytes at {@code offset}, issued now. */
    Write issueWrite(long offset, int length) {
        Write w = new Write(ids.incrementAndGet(), offset / SECTOR, length / SECTOR, tick());
        for (int i = 0; i < w.sectors; i++) {
            List<Write> l = bySector[(int) (w.firstSector + i)];
            synchronized (l) {
                l.add(w);
            }
        }
        return w;
    }

    /** Records a write's answer, now. */
    void answer(Write w, boolean ok) {
        w.acknowledged = ok;
        w.answered = tick();
    }

    /** Records a FLUSH issued at {@code issued} that completed. */
    synchronized void flushed(long issued) {
        completedFlushIssues.add(issued);
    }

    /** Records a write that was logged elsewhere (a child process's), for the crash check. */
    void replay(long id, long offset, int length, long issued, long answered, boolean ok) {
        Write w = new Write(id, offset / SECTOR, length / SECTOR, issued);
        w.answered = answered;
        w.acknowledged = ok;
        for (int i = 0; i < w.sectors; i++) {
            bySector[(int) (w.firstSector + i)].add(w);
        }
    }

    /** The bytes of write {@code w}: each sector holds its id and the sector's number, repeated. */
    static void stamp(ByteBuffer to, long id, long firstSector, int sectors) {
        for (int s = 0; s < sectors; s++) {
            for (int i = 0; i < SECTOR; i += 16) {
                to.putLong(id).putLong(firstSector + s);
            }
        }
    }

    /**
     * Which write a sector of read data came from: its id, {@link #INITIAL} for zeros, or -1 when the bytes are no
     * write's stamp of this sector (torn, misplaced, garbage).
     */
    static long decode(ByteBuffer data, int at, long sector) {
        long id = data.getLong(at);
        long where = data.getLong(at + 8);
        if (id == 0 && where == 0) {
            for (int i = 0; i < SECTOR; i += 8) {
                if (data.getLong(at + i) != 0) {
                    return -1;
                }
            }
            return INITIAL;
        }
        if (where != sector) {
            return -1;
        }
        for (int i = 0; i < SECTOR; i += 16) {
            if (data.getLong(at + i) != id || data.getLong(at + i + 8) != sector) {
                return -1;
            }
        }
        return id;
    }

    /**
     * Checks a read of {@code sector} issued at {@code issued}, answered at {@code answered}, that returned write
     * {@code got}; returns null when the history allows it, else why not.
     */
    String checkRead(long sector, long issued, long answered, long got) {
        List<Write> writes;
        List<Write> l = bySector[(int) sector];
        synchronized (l) {
            writes = new ArrayList<>(l);
        }
        return judge(sector, writes, got, issued, answered, null);
    }

    /** After a crash: the value {@code got} found in {@code sector} once the store was reopened. */
    String checkAfterCrash(long sector, long got) {
        long lastFlush;
        synchronized (this) {
            lastFlush = completedFlushIssues.stream()
                    .mapToLong(Long::longValue)
                    .max()
                    .orElse(0);
        }
        List<Write> writes = bySector[(int) sector];
        return judge(sector, writes, got, Long.MAX_VALUE - 1, Long.MAX_VALUE, lastFlush);
    }

    /**
     * The rule of the class comment. With {@code durableBefore}, only writes acknowledged before that tick supersede
     * (a crash may have lost the others); reads then look at the end of time.
     */
    private static String judge(
            long sector, List<Write> writes, long got, long readIssued, long readAnswered, Long durableBefore) {
        if (got < 0) {
            // A read that overlaps a write may see part of it (a buffered file copies pages byte by byte); any other
            // read must see one write's stamp whole.
            for (Write w : writes) {
                if (w.issued < readAnswered && w.answered > readIssued && durableBefore == null) {
                    return null;
                }
            }
            return "sector " + sector + " holds bytes no write stamped there (torn, misplaced or garbage), and no write"
                    + " of it overlapped the read; its writes: " + writes;
        }
        Write found = null;
        for (Write w : writes) {
            if (w.id == got) {
                found = w;
            }
        }
        if (got != INITIAL && found == null) {
            return "sector " + sector + " holds write " + got + ", which never wrote it";
        }
        long foundAnswered = found == null ? 0 : found.answered;
        long foundIssued = found == null ? 0 : found.issued;
        if (found != null && foundIssued >= readAnswered) {
            return "sector " + sector + " holds " + found + ", issued after the read was answered at " + readAnswered;
        }
        for (Write w : writes) {
            long answered = w.answered;
            boolean supersedes = w.acknowledged
                    && answered < readIssued
                    && w.issued > foundAnswered
                    && (durableBefore == null || answered < durableBefore);
            if (supersedes) {
                return "sector " + sector + " holds " + (found == null ? "its initial zeros" : found)
                        + ", superseded by " + w + " before the read was issued at " + readIssued
                        + (durableBefore == null
                                ? ""
                                : " (durable: acknowledged before a completed FLUSH issued at " + durableBefore + ")")
                        + "; its writes: " + writes;
            }
        }
        return null;
    }
}

package dev.reactorubd.samples;

import dev.reactorubd.io.UbdQueue;
import java.io.Console;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The live line {@code ubd serve} keeps on a terminal: IOPS, MB/s and requests in flight, rewritten in place (carriage
 * return) once a second from the queues' counters, on a daemon thread of its own.
 */
final class StatusLine implements AutoCloseable {
    private final List<UbdQueue> queues;
    private final PrintStream out;
    private final ScheduledExecutorService timer;
    private long lastRequests;
    private long lastBytes;
    private long lastNanos;
    private int lastWidth;
    private boolean closed;

    private StatusLine(List<UbdQueue> queues, PrintStream out) {
        this.queues = queues;
        this.out = out;
        this.lastNanos = System.nanoTime();
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ubd-status");
            t.setDaemon(true);
            return t;
        });
    }

    /** Starts refreshing the line on {@code out} every second. */
    static StatusLine start(List<UbdQueue> queues, PrintStream out) {
        StatusLine s = new StatusLine(queues, out);
        s.timer.scheduleAtFixedRate(s::refresh, 1, 1, TimeUnit.SECONDS);
        return s;
    }

    /**
     * Whether to show the line: as asked ({@code --status} / {@code --no-status}), else when stdout is a terminal.
     * Since Java 22 {@code System.console()} is not null when redirected, so the terminal is asked too.
     */
    static boolean wanted(Boolean asked) {
        if (asked != null) {
            return asked;
        }
        Console c = System.console();
        return c != null && c.isTerminal();
    }

    private synchronized void refresh() {
        if (closed) {
            return;
        }
        long requests = 0;
        long failed = 0;
        long bytes = 0;
        int inFlight = 0;
        for (UbdQueue q : queues) {
            requests += q.completedCount() + q.failedCount();
            failed += q.failedCount();
            bytes += q.bytesCount();
            inFlight += q.inFlightCount();
        }
        long now = System.nanoTime();
        double seconds = Math.max(1e-3, (now - lastNanos) / 1e9);
        String line =
                format((requests - lastRequests) / seconds, (bytes - lastBytes) / seconds, inFlight, requests, failed);
        lastRequests = requests;
        lastBytes = bytes;
        lastNanos = now;
        // Pad over what a longer previous line left on the terminal.
        out.print("\r" + line + " ".repeat(Math.max(0, lastWidth - line.length())));
        out.flush();
        lastWidth = line.length();
    }

    /** One status line, e.g. {@code 12,345 IOPS  48.2 MB/s  in flight 17  (1,234,567 requests, 0 failed)}. */
    static String format(double iops, double bytesPerSecond, int inFlight, long requests, long failed) {
        return String.format(
                Locale.ROOT,
                "%,.0f IOPS  %.1f MB/s  in flight %d  (%,d requests, %,d failed)",
                iops,
                bytesPerSecond / 1e6,
                inFlight,
                requests,
                failed);
    }

    /** Stops refreshing and clears the line, so that what follows starts on a clean line. */
    @Override
    public synchronized void close() {
        closed = true;
        timer.shutdownNow();
        if (lastWidth > 0) {
            out.print("\r" + " ".repeat(lastWidth) + "\r");
            out.flush();
        }
    }
}

package dev.reactorubd.targets.history;

import dev.reactorubd.Errno;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.FaultyBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testkit.VirtualDevice;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The process {@link HistoryCrashTest} kills: serves a mirror of two files through the test kit and runs writes,
 * reads and flushes on it, telling its parent every write's issue and answer and every completed flush on standard
 * output (a line each, printed after the fact it states), until it is killed.
 *
 * <p>Arguments: the directory of the files, their size, the seed. Its first line is the device's size.
 */
public final class HistoryCrashChild {
    /** The operation at which replica b starts failing its writes. */
    static final int FAIL_REPLICA_AT = 1500;

    private HistoryCrashChild() {}

    /**
     * Runs until killed (or until a long workload ends).
     *
     * @param args the directory, the size, the seed
     */
    public static void main(String[] args) {
        Path dir = Path.of(args[0]);
        long size = Long.parseLong(args[1]);
        long seed = Long.parseLong(args[2]);
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false);
        FileBackend.Options o = FileBackend.Options.defaults().createSize(size);
        // Replica b stops taking writes part of the way: the mirror goes on with a alone, b is stale from then on.
        FaultyBackend b =
                Backends.from(FileBackend.open(dir.resolve("b.img"), o)).faults();
        var mirror = HistoryCrashTest.mirror(FileBackend.open(dir.resolve("a.img"), o), b);
        long deviceSize = mirror.size();
        out.println("SIZE " + deviceSize);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 32, Duration.ofSeconds(30), UbdMetrics.NONE)) {
            HistoryWorkload w = new HistoryWorkload(dev, deviceSize, seed).journal(new HistoryWorkload.Journal() {
                @Override
                public void issued(History.Write w, long offset, int length) {
                    line("I " + w.id + " " + offset + " " + length + " " + w.issued);
                }

                @Override
                public void answered(History.Write w) {
                    line("A " + w.id + " " + w.answered + " " + (w.acknowledged ? 1 : 0));
                }

                @Override
                public void flushed(long issued) {
                    line("F " + issued);
                }

                private void line(String s) {
                    synchronized (out) {
                        out.println(s);
                        out.flush();
                    }
                }
            });
            w.fault(FAIL_REPLICA_AT, () -> b.failWrites(Errno.EIO));
            out.println("READY");
            out.flush();
            w.run(1_000_000, 32, 4, Duration.ofHours(1));
        }
        System.exit(0);
    }
}

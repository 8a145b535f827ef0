package dev.reactorubd.targets.history;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.MirrorOptions;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The crash half of the history checker: a child JVM serves a mirror of two files and writes to it under load, one
 * replica failing its writes part of the way (the mirror goes on without it); the child is killed (SIGKILL) in the
 * middle; the files are assembled again as the same mirror, and every sector must hold a value the history allows
 * after a crash (every write acknowledged before a completed FLUSH, or a later one), the same from every replica: two
 * reads in a row of each range (the mirror takes replicas in turn) must agree. (A mirror that forgets which replica
 * was stale serves every other read from it.)
 */
class HistoryCrashTest {
    private static final long SIZE = 3L << 20;
    private static final int KILL_AFTER = 4000;
    private static final int CHUNK = 64 << 10;

    @TempDir
    Path dir;

    /** The mirror both processes make of the two replicas: assembled from their superblocks. */
    static BlockBackend mirror(BlockBackend a, BlockBackend b) {
        return Backends.assembleMirror(MirrorOptions.defaults(), a, b).block(Duration.ofSeconds(60));
    }

    @Test
    void afterAKilledServerEveryBlockAcknowledgedBeforeAFlushReadsBackTheSameFromEveryReplica() throws Exception {
        long seed = HistoryCheckTest.seed();
        History history = null;
        Map<Long, long[]> issued = new HashMap<>(); // id -> offset, length, tick
        List<String> answers = new ArrayList<>();
        Process child = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-XX:TieredStopAtLevel=1",
                        "-cp",
                        System.getProperty("java.class.path"),
                        HistoryCrashChild.class.getName(),
                        dir.toString(),
                        Long.toString(SIZE),
                        Long.toString(seed))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        int acks = 0;
        try (BufferedReader in =
                new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.US_ASCII))) {
            long end = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
            String line;
            while ((line = in.readLine()) != null) {
                String[] f = line.split(" ");
                switch (f[0]) {
                    case "SIZE" -> history = new History(Long.parseLong(f[1]));
                    case "I" ->
                        issued.put(
                                Long.parseLong(f[1]),
                                new long[] {Long.parseLong(f[2]), Long.parseLong(f[3]), Long.parseLong(f[4])});
                    case "A" -> {
                        answers.add(line);
                        acks++;
                    }
                    case "F" -> history.flushed(Long.parseLong(f[1]));
                    default -> {}
                }
                if (acks == KILL_AFTER) {
                    // SIGKILL, in the middle of the load; what it printed before dying is still read to the end.
                    child.toHandle().destroyForcibly();
                }
                assertTrue(System.nanoTime() < end, "the child ran " + acks + " writes in 3 minutes");
            }
        } finally {
            child.destroyForcibly();
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        }
        assertTrue(
                acks >= KILL_AFTER,
                "the child wrote until it was killed: " + acks + " answers, exit " + child.exitValue());
        Map<Long, long[]> answered = new HashMap<>();
        for (String a : answers) {
            String[] f = a.split(" ");
            answered.put(Long.parseLong(f[1]), new long[] {Long.parseLong(f[2]), Long.parseLong(f[3])});
        }
        assertTrue(history != null, "the child said its device's size");
        int inFlight = 0;
        for (Map.Entry<Long, long[]> e : issued.entrySet()) {
            long[] i = e.getValue();
            long[] a = answered.get(e.getKey());
            if (a == null) {
                inFlight++;
            }
            history.replay(
                    e.getKey(), i[0], (int) i[1], i[2], a == null ? Long.MAX_VALUE : a[0], a != null && a[1] == 1);
        }
        System.out.println("history crash check, seed " + seed + ": killed after " + acks + " answered writes, "
                + inFlight + " in flight");
        FileBackend.Options o = FileBackend.Options.defaults();
        BlockBackend again =
                mirror(FileBackend.open(dir.resolve("a.img"), o), FileBackend.open(dir.resolve("b.img"), o));
        List<String> violations = new ArrayList<>();
        long deviceSize = again.size();
        assertEquals(history.sectors() * (long) History.SECTOR, deviceSize);
        try (VirtualDevice dev = VirtualDevice.serve(again, 1, 4)) {
            try {
                for (long at = 0; at < deviceSize; at += CHUNK) {
                    byte[] first = read(dev, at);
                    byte[] second = read(dev, at);
                    ByteBuffer b1 = ByteBuffer.wrap(first);
                    ByteBuffer b2 = ByteBuffer.wrap(second);
                    for (int s = 0; s < CHUNK / History.SECTOR; s++) {
                        long sector = at / History.SECTOR + s;
                        long v1 = History.decode(b1, s * History.SECTOR, sector);
                        long v2 = History.decode(b2, s * History.SECTOR, sector);
                        String why = history.checkAfterCrash(sector, v1);
                        if (why == null && v1 != v2) {
                            why = "sector " + sector + " reads write " + v1 + ", then write " + v2
                                    + ": the replicas differ";
                        }
                        if (why != null) {
                            violations.add(why);
                        }
                    }
                }
            } finally {
                // Before the device's loops end: it stops its crash resync, whose copy in flight then ends there.
                again.close().block(Duration.ofSeconds(30));
            }
        }
        assertEquals(
                List.of(),
                violations.subList(0, Math.min(10, violations.size())),
                "seed " + seed + ": " + violations.size() + " violation(s)");
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    private static byte[] read(VirtualDevice dev, long at) {
        ByteBuf b = dev.read(0, at, CHUNK).block(Duration.ofSeconds(30));
        try {
            byte[] out = new byte[CHUNK];
            b.getBytes(b.readerIndex(), out);
            return out;
        } finally {
            b.release();
        }
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;

/** The packaged command, as a user runs it ({@code java -jar samples/target/ubd.jar serve ...}), and recovery. */
@DeviceTest
class ServeCommandDeviceTest {
    private static final Pattern DEVICE = Pattern.compile("(/dev/ublkb(\\d+))");
    private static final Duration WAIT = Duration.ofSeconds(90);

    /** The status and output of a {@code ubd} run to its end. */
    private record Cli(int status, String out, String err) {}

    /** Runs {@code java -jar ubd.jar ARGS} to its end. */
    private static Cli ubd(String... args) throws IOException, InterruptedException {
        List<String> cmd = UbdJvm.command(args);
        Path out = Files.createTempFile(Path.of("/var/tmp"), "ubd-cli", ".out");
        Path err = Files.createTempFile(Path.of("/var/tmp"), "ubd-cli", ".err");
        try {
            Process p = new ProcessBuilder(cmd)
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile())
                    .start();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "ubd " + cmd + " ended");
            return new Cli(p.exitValue(), Files.readString(out), Files.readString(err));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /** A running {@code ubd serve}, its log, and the device it printed. */
    private record Served(Process process, Path log, String device, int id) {}

    private static Served serve(String... args) throws IOException, InterruptedException {
        assertTrue(Files.exists(UbdJvm.JAR), UbdJvm.JAR + " is built (mvn package)");
        List<String> serveArgs = new ArrayList<>(List.of("serve"));
        serveArgs.addAll(List.of(args));
        List<String> cmd = UbdJvm.command(serveArgs.toArray(String[]::new));
        Path log = Files.createTempFile(Path.of("/var/tmp"), "ubd-serve", ".log");
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (p.isAlive() && System.nanoTime() < deadline) {
            Matcher m = DEVICE.matcher(Files.readString(log));
            if (m.find()) {
                return new Served(p, log, m.group(1), Integer.parseInt(m.group(2)));
            }
            Thread.sleep(100);
        }
        p.destroyForcibly();
        throw new AssertionError("no line with the device path: " + Files.readString(log));
    }

    /**
     * {@code ubd features} names every bit of the kernel's GET_FEATURES answer: the names it prints, mapped back to
     * their bits, make up exactly the raw mask, so a bit the library does not know (printed as nothing at all) fails.
     */
    @Test
    void featuresNamesEveryBitTheKernelReports() throws Exception {
        long mask;
        try (UbdControl control = UbdControl.open()) {
            mask = control.featureMask().block(WAIT);
        }
        Cli f = ubd("features");
        assertEquals(0, f.status(), f.out() + f.err());
        String line = f.out().strip();
        assertTrue(line.startsWith("[") && line.endsWith("]"), line);
        assertFalse(line.toLowerCase(Locale.ROOT).contains("unknown"), line);
        long named = 0;
        for (String name : line.substring(1, line.length() - 1).split(",\\s*")) {
            named |= UblkFeature.valueOf(name).mask();
        }
        System.out.println("ubd features on " + Vm.kernelRelease() + ": 0x" + Long.toHexString(mask) + " " + line);
        assertEquals(
                "0x" + Long.toHexString(mask),
                "0x" + Long.toHexString(named),
                "GET_FEATURES bits without a name: 0x" + Long.toHexString(mask & ~named));

        Cli j = ubd("features", "--json");
        assertEquals(0, j.status(), j.out() + j.err());
        JsonNode doc = new ObjectMapper().readTree(j.out());
        assertEquals("0x" + Long.toHexString(mask), doc.get("mask").asText(), j.out());
        assertEquals("0x0", doc.get("unknown_bits").asText(), j.out());
        long jsonNamed = 0;
        for (JsonNode n : doc.get("features")) {
            jsonNamed |= UblkFeature.valueOf(n.asText()).mask();
        }
        assertEquals(mask, jsonNamed, j.out());
    }

    @Test
    void serveMemoryTargetUntilSigterm() throws Exception {
        Served s = serve("--target", "memory", "--size", "32M", "--queues", "2", "--depth", "16", "--json");
        try {
            // The start line is one JSON object (serve --json), among the log lines of stderr.
            // (The library's "is live" log line may come before it.)
            String start = null;
            for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30); start == null; Thread.sleep(100)) {
                start = Files.readString(s.log())
                        .lines()
                        .filter(l -> l.startsWith("{"))
                        .findFirst()
                        .orElse(null);
                assertTrue(start != null || System.nanoTime() < end, "a JSON start line: " + Files.readString(s.log()));
            }
            JsonNode doc = new ObjectMapper().readTree(start);
            assertEquals("serving", doc.get("event").asText(), start);
            assertEquals(s.id(), doc.get("id").asInt(), start);
            assertEquals(s.device(), doc.get("block_device").asText(), start);
            assertEquals("/dev/ublkc" + s.id(), doc.get("char_device").asText(), start);
            assertEquals(32L << 20, doc.get("size_bytes").asLong(), start);
            assertEquals(2, doc.get("queues").asInt(), start);
            assertEquals(16, doc.get("depth").asInt(), start);
            assertEquals(s.process().pid(), doc.get("pid").asLong(), start);
            Vm.sh(60, "printf 'reactor-ubd sample' | dd of=" + s.device() + " bs=512 conv=sync,fsync 2>&1")
                    .requireSuccess();
            Vm.Result back = Vm.sh(60, "dd if=" + s.device() + " bs=512 count=1 iflag=direct 2>/dev/null | head -c 18")
                    .requireSuccess();
            assertEquals("reactor-ubd sample", back.output());
            s.process().destroy(); // SIGTERM
            assertTrue(s.process().waitFor(120, TimeUnit.SECONDS), "the server stopped");
            String out = Files.readString(s.log());
            assertEquals(0, s.process().exitValue(), out);
            assertTrue(out.contains("stopped " + s.device()), out);
            assertFalse(out.contains("IOPS"), "no status line when stdout is not a terminal: " + out);
            assertFalse(Files.exists(Path.of(s.device())), s.device() + " is gone");
            assertEquals("", Vm.sh(10, "ls /sys/class/ublk-char/").output().trim(), "no ublk device left");
        } finally {
            s.process().destroyForcibly();
            Files.deleteIfExists(s.log());
        }
    }

    /**
     * The packaged jar serves a buffered file in place where the kernel registers request pages: the library reads
     * the io_uring transport's version from Netty's version records before it touches Netty's ring, and the shaded
     * jar once kept only one Netty jar's records, so the command line served everything with USER_COPY (one INFO
     * line said so) while the in-process tests had zero copy.
     */
    @Test
    void thePackagedCommandServesAFileInPlaceWhereTheKernelRegistersPages() throws Exception {
        Vm.assumeFeature(UblkFeature.AUTO_BUF_REG);
        Path dir = Files.createTempDirectory(Path.of("/run"), "ubd-cli-zc");
        Path img = dir.resolve("disk.img");
        Served s = serve(
                "--target", "file", "--file", img.toString(), "--create", "16M", "--queues", "1", "--depth", "16");
        try {
            Vm.sh(
                            60,
                            "set -e; head -c 1048576 /dev/urandom > " + dir + "/data; dd if=" + dir + "/data of="
                                    + s.device() + " bs=64k oflag=direct 2>&1; dd if=" + s.device() + " of=" + dir
                                    + "/back bs=64k count=16 iflag=direct 2>&1; cmp " + dir + "/data " + dir + "/back")
                    .requireSuccess();
            s.process().destroy(); // SIGTERM
            assertTrue(s.process().waitFor(120, TimeUnit.SECONDS), "the server stopped");
            String out = Files.readString(s.log());
            assertEquals(0, s.process().exitValue(), out);
            assertFalse(out.contains("zero copy and linked commits are off"), out);
            assertFalse(out.contains("no zero copy"), out);
            Matcher stopped =
                    Pattern.compile("\\((\\d+) failed, (\\d+) zero-copy\\)").matcher(out);
            assertTrue(stopped.find(), "the stop line counts zero-copy requests: " + out);
            assertEquals("0", stopped.group(1), out);
            assertTrue(
                    Long.parseLong(stopped.group(2)) >= 32, "the 16 writes and 16 reads were served in place: " + out);
        } finally {
            s.process().destroyForcibly();
            Files.deleteIfExists(s.log());
            Vm.sh(10, "rm -rf " + dir);
        }
    }

    /** Newest kernel only: its subject is the command's text and JSON, which the kernel does not change. */
    @Test
    @NewestKernelOnly
    void listShowsAServedDeviceAsTextAndJsonAndErrorsExitWithTheirStatus() throws Exception {
        Served s = serve("--target", "memory", "--size", "32M", "--queues", "2", "--depth", "16", "--status");
        try {
            Cli json = ubd("list", "-v", "--json");
            assertEquals(0, json.status(), json.err());
            JsonNode device = null;
            for (JsonNode d : new ObjectMapper().readTree(json.out()).get("devices")) {
                if (d.get("id").asInt() == s.id()) {
                    device = d;
                }
            }
            assertNotNull(device, "device " + s.id() + " in " + json.out());
            assertEquals("LIVE", device.get("state").asText());
            assertEquals(32L << 20, device.get("size_bytes").asLong());
            assertEquals(2, device.get("queues").asInt());
            assertEquals(16, device.get("depth").asInt());
            assertEquals(s.process().pid(), device.get("server_pid").asLong());
            assertEquals(s.device(), device.get("block_device").asText());
            assertTrue(device.get("flags").toString().contains("USER_COPY"), device.toString());

            Cli table = ubd("list", "-v");
            assertEquals(0, table.status(), table.err());
            String line = table.out()
                    .lines()
                    .filter(l -> l.startsWith(s.id() + " "))
                    .findFirst()
                    .orElseThrow();
            assertEquals(
                    List.of(
                            Integer.toString(s.id()),
                            "LIVE",
                            "2",
                            "16",
                            "32M",
                            Long.toString(s.process().pid()),
                            s.device()),
                    List.of(line.split(" +")).subList(0, 7),
                    line);
            assertTrue(line.contains("user_copy"), line);

            Cli usage = ubd("list", "--bogus");
            assertEquals(2, usage.status(), usage.err());
            assertTrue(usage.err().startsWith("ubd: Unknown option: '--bogus'"), usage.err());
            assertEquals(1, usage.err().lines().count(), usage.err());

            Cli busy = ubd("serve", "--target", "null", "--size", "8M", "--id", Integer.toString(s.id()));
            assertEquals(5, busy.status(), busy.out() + busy.err());
            assertTrue(busy.err().startsWith("ubd: ") && !busy.err().contains("\tat "), busy.err());

            Cli missing = ubd("remove", "4000");
            assertEquals(5, missing.status(), missing.out() + missing.err());
            assertTrue(missing.err().startsWith("ubd: "), missing.err());

            Thread.sleep(1500); // the status line is refreshed every second
            s.process().destroy(); // SIGTERM
            assertTrue(s.process().waitFor(120, TimeUnit.SECONDS), "the server stopped");
            String out = Files.readString(s.log());
            assertEquals(0, s.process().exitValue(), out);
            assertTrue(out.contains("IOPS") && out.contains("in flight") && out.contains("\r"), "--status: " + out);
            assertTrue(out.contains("stopped " + s.device()), out);
        } finally {
            s.process().destroyForcibly();
            Files.deleteIfExists(s.log());
        }
    }

    @Test
    void aDeviceLeftDeadByAKilledServerIsListedAsDeadAndRemoved() throws Exception {
        Served s = serve("--target", "memory", "--size", "32M", "--queues", "2", "--depth", "16");
        try {
            s.process().destroyForcibly(); // SIGKILL: the device is not recoverable, so the kernel stops it
            assertTrue(s.process().waitFor(60, TimeUnit.SECONDS));
            // The kernel stops a non-recoverable device once its server's file is released; that runs in a worker.
            String state = "";
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < end) {
                Cli json = ubd("list", "--json");
                assertEquals(0, json.status(), json.err());
                for (JsonNode d : new ObjectMapper().readTree(json.out()).get("devices")) {
                    if (d.get("id").asInt() == s.id()) {
                        state = d.get("state").asText();
                    }
                }
                if ("DEAD".equals(state)) {
                    break;
                }
                Thread.sleep(500);
            }
            assertEquals("DEAD", state, "a killed server's device is listed as DEAD");
            Cli table = ubd("list");
            assertTrue(
                    table.out().lines().anyMatch(l -> l.startsWith(s.id() + " ") && l.contains("DEAD")), table.out());
            Cli removed = ubd("remove", Integer.toString(s.id()));
            assertEquals(0, removed.status(), removed.out() + removed.err());
            assertFalse(Vm.deviceExists(s.id()), "device " + s.id() + " removed");
            assertFalse(Files.exists(Path.of(s.device())), s.device() + " is gone");
        } finally {
            s.process().destroyForcibly();
            Files.deleteIfExists(s.log());
            Vm.removeEveryDevice();
        }
    }

    @Test
    void serveAMirrorOfAFileAndMemoryThenTheFileHoldsTheData() throws Exception {
        Path img = Path.of("/var/tmp/ubd-cli-mirror.img");
        Files.deleteIfExists(img);
        Served s = serve(
                "--target",
                "mirror",
                "--replica",
                "file:" + img,
                "--replica",
                "memory:16M",
                "--create",
                "16M",
                "--queues",
                "2",
                "--cache",
                "4M",
                "--retry",
                "2");
        try {
            Vm.sh(
                            60,
                            "head -c 1048576 /dev/urandom > /var/tmp/ubd-cli-data; dd if=/var/tmp/ubd-cli-data of="
                                    + s.device() + " bs=64k seek=16 oflag=direct conv=fsync status=none")
                    .requireSuccess();
            Vm.sh(60, "cmp -n 1048576 -i 1048576:0 " + s.device() + " /var/tmp/ubd-cli-data")
                    .requireSuccess();
            s.process().destroy(); // SIGTERM
            assertTrue(s.process().waitFor(120, TimeUnit.SECONDS), "the server stopped");
            String out = Files.readString(s.log());
            assertEquals(0, s.process().exitValue(), out);
            assertTrue(out.contains("serving " + s.device() + ": mirror of [file:" + img), out);
            // The file replica holds what was written, after the mirror's 1 MiB of metadata, after the server is gone.
            Vm.sh(60, "cmp -n 1048576 -i 2097152:0 " + img + " /var/tmp/ubd-cli-data")
                    .requireSuccess();
        } finally {
            s.process().destroyForcibly();
            Files.deleteIfExists(s.log());
            Files.deleteIfExists(img);
        }
    }

    @Test
    void removingADeviceThatIsHeldIsRefusedNamingTheHoldersAndAsyncRemovalFreesIt() throws Exception {
        Served s = serve("--target", "memory", "--size", "32M");
        Process holder = null;
        try {
            Vm.sh(120, "mkfs.ext4 -q -F " + s.device() + " && mkdir -p /mnt/held && mount " + s.device() + " /mnt/held")
                    .requireSuccess();
            holder = new ProcessBuilder("sh", "-c", "exec 3<" + s.device() + "; exec sleep 300").start();
            Thread.sleep(500);
            s.process().destroyForcibly(); // the server dies; the device stays behind, held
            assertTrue(s.process().waitFor(60, TimeUnit.SECONDS));
            try (UbdControl control = UbdControl.open()) {
                long t0 = System.nanoTime();
                UbdDeviceBusyException busy = Assertions.assertThrows(
                        UbdDeviceBusyException.class,
                        () -> control.removeDevice(s.id()).block(WAIT));
                long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(ms < control.timeout().toMillis(), "refused within the bound: " + ms + " ms");
                String m = busy.getMessage();
                assertTrue(m.contains("mounted at /mnt/held"), m);
                assertTrue(m.contains("open in process " + holder.pid() + " (sleep)"), m);
                assertTrue(m.contains("removeDeviceAsync"), m);
                assertTrue(Vm.deviceExists(s.id()), "nothing was removed");
                // Asynchronous removal does not wait for the holders; the id goes once they let go.
                control.removeDeviceAsync(s.id()).block(WAIT);
                holder.destroyForcibly();
                holder.waitFor(30, TimeUnit.SECONDS);
                Vm.sh(60, "umount -l /mnt/held").requireSuccess();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (Vm.deviceExists(s.id()) && System.nanoTime() < deadline) {
                    Thread.sleep(100);
                }
                assertFalse(Vm.deviceExists(s.id()), "the id is freed once the holders are gone");
            }
        } finally {
            if (holder != null) {
                holder.destroyForcibly();
            }
            s.process().destroyForcibly();
            Vm.sh(30, "umount -l /mnt/held 2>/dev/null; true");
            Files.deleteIfExists(s.log());
        }
    }

    /**
     * What a service manager does: the same {@code ubd serve --id N --recovery REISSUE} started again after the
     * first was killed takes the device over (its data, and a reader that waited) instead of failing on an id in use;
     * while the first still runs, a second is refused naming its process (exit status 5).
     */
    @Test
    void theSameServeCommandStartedAgainAfterAKillRecoversTheDevice() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/run"), "ubd-restart");
        String[] args = {
            "--id",
            "7",
            "--target",
            "file",
            "--file",
            dir.resolve("disk.img").toString(),
            "--create",
            "16M",
            "--recovery",
            "REISSUE",
            "--json"
        };
        Served first = serve(args);
        Served second = null;
        Process reader = null;
        try {
            assertEquals(7, first.id());
            Vm.sh(60, "printf 'kept across a restart' | dd of=" + first.device() + " bs=512 conv=sync,fsync 2>&1")
                    .requireSuccess();
            Cli refused = ubd(concat("serve", args));
            assertEquals(5, refused.status(), refused.out() + refused.err());
            assertTrue(
                    refused.err()
                            .contains("served by process " + first.process().pid()),
                    refused.err());

            first.process().destroyForcibly(); // SIGKILL
            assertTrue(first.process().waitFor(60, TimeUnit.SECONDS));
            reader = new ProcessBuilder("dd", "if=" + first.device(), "bs=512", "count=1", "iflag=direct").start();
            second = serve(args);
            assertEquals(7, second.id());
            assertTrue(reader.waitFor(120, TimeUnit.SECONDS), "the reader that waited finished");
            String read = new String(reader.getInputStream().readAllBytes());
            assertTrue(read.startsWith("kept across a restart"), read);
            String log = Files.readString(second.log());
            assertTrue(log.contains("recovering it instead of adding a new one"), log);
            second.process().destroy(); // SIGTERM: stops and deletes it
            assertTrue(second.process().waitFor(120, TimeUnit.SECONDS), "the second server stopped");
            assertEquals(0, second.process().exitValue(), Files.readString(second.log()));
            assertFalse(Vm.deviceExists(7), "device 7 deleted");
        } finally {
            if (reader != null) {
                reader.destroyForcibly();
            }
            first.process().destroyForcibly();
            Files.deleteIfExists(first.log());
            if (second != null) {
                second.process().destroyForcibly();
                Files.deleteIfExists(second.log());
            }
            Vm.removeEveryDevice();
            Vm.sh(10, "rm -rf " + dir);
        }
    }

    private static String[] concat(String first, String... rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    @Test
    void anotherProcessRecoversADeviceWhoseServerWasKilled() throws Exception {
        Served s = serve("--target", "null", "--size", "32M", "--recoverable");
        Process reader = null;
        try {
            s.process().destroyForcibly(); // SIGKILL: no cleanup at all
            assertTrue(s.process().waitFor(60, TimeUnit.SECONDS));
            // A reader that arrives while nobody serves the device waits (it is not failed).
            reader = new ProcessBuilder("dd", "if=" + s.device(), "of=/dev/null", "bs=4k", "count=256", "iflag=direct")
                    .redirectErrorStream(true)
                    .start();
            try (UbdServer server = UbdServer.create()) {
                UbdDevice dev = server.recover(s.id(), new NullBackend()).block(WAIT);
                assertNotNull(dev);
                DeviceInfo info = server.control().deviceInfo(s.id()).block(WAIT);
                assertEquals(UblkDevState.LIVE, info.state());
                assertEquals(ProcessHandle.current().pid(), info.serverPid());
                assertTrue(reader.waitFor(120, TimeUnit.SECONDS), "the waiting reader finished");
                String out = new String(reader.getInputStream().readAllBytes());
                assertEquals(0, reader.exitValue(), out);
                assertTrue(out.contains("1048576 bytes"), out);
                dev.close().block(WAIT);
            }
            assertFalse(Vm.deviceExists(s.id()), "device " + s.id() + " deleted");
            assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls");
        } finally {
            if (reader != null) {
                reader.destroyForcibly();
            }
            Files.deleteIfExists(s.log());
            Vm.removeEveryDevice();
        }
    }
}

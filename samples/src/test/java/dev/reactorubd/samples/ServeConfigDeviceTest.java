package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * {@code ubd serve --config FILE} as a service manager runs it: the devices of the file from one process, SIGHUP
 * applying a changed file, a restart after a kill taking the recoverable device over with its data, SIGTERM deleting
 * every device.
 */
@DeviceTest
@NewestKernelOnly
class ServeConfigDeviceTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void aConfigFileServesItsDevicesAndSighupAddsRemovesAndRefusesChanges() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/run"), "ubd-config");
        Path conf = dir.resolve("devices.conf");
        String memory = "--id 20 --target memory --size 8M\n";
        String file = "--id 21 --target file --file " + dir.resolve("disk.img") + " --create 16M --recovery REISSUE\n";
        Files.writeString(conf, "# two devices\n" + memory + file);
        Process first = null;
        Process second = null;
        Process reader = null;
        Path log1 = Files.createTempFile(Path.of("/var/tmp"), "ubd-config", ".log");
        Path log2 = Files.createTempFile(Path.of("/var/tmp"), "ubd-config", ".log");
        try {
            first = start(conf, log1);
            JsonNode configured = awaitEvent(first, log1, "configured", 1);
            assertEquals(2, configured.get("devices").asInt(), Files.readString(log1));
            assertTrue(Vm.deviceExists(20) && Vm.deviceExists(21), Files.readString(log1));
            Vm.sh(60, "printf 'kept across a restart' | dd of=/dev/ublkb21 bs=512 conv=sync,fsync 2>&1")
                    .requireSuccess();

            // Device 20's line changed (refused: it goes on as it was), device 22 added, device 21 unchanged.
            Files.writeString(
                    conf, "--id 20 --target memory --size 16M\n" + file + "--id 22 --target null --size 4M\n");
            JsonNode reload = hangUp(first, log1, 1);
            assertEquals("[22]", reload.get("added").toString(), reload.toString());
            assertEquals("[20]", reload.get("refused").toString(), reload.toString());
            assertEquals("[]", reload.get("removed").toString(), reload.toString());
            assertEquals(1, reload.get("unchanged").asInt(), reload.toString());
            assertTrue(Vm.deviceExists(22), "device 22 added");
            assertEquals(
                    "8388608",
                    Vm.sh(10, "blockdev --getsize64 /dev/ublkb20").output().strip(),
                    "the refused change left device 20 as it was");

            // A file that no longer parses changes nothing.
            Files.writeString(conf, file + "--id 22 --target null --size 4M --no-such-option\n");
            Vm.run(10, "kill", "-HUP", Long.toString(first.pid())).requireSuccess();
            awaitLog(first, log1, "reload refused, every device goes on as it was");
            assertTrue(Vm.deviceExists(20) && Vm.deviceExists(22), "a refused reload removed nothing");

            Files.writeString(conf, file);
            reload = hangUp(first, log1, 2);
            assertEquals("[20,22]", reload.get("removed").toString(), reload.toString());
            assertFalse(Vm.deviceExists(20) || Vm.deviceExists(22), "removed lines' devices deleted");

            first.destroyForcibly(); // SIGKILL: device 21 is left for a new server
            assertTrue(first.waitFor(60, TimeUnit.SECONDS));
            reader = new ProcessBuilder("dd", "if=/dev/ublkb21", "bs=512", "count=1", "iflag=direct").start();
            second = start(conf, log2);
            JsonNode again = awaitEvent(second, log2, "configured", 1);
            assertEquals(1, again.get("devices").asInt(), Files.readString(log2));
            assertTrue(
                    Files.readString(log2).contains("recovering it instead of adding a new one"),
                    Files.readString(log2));
            assertTrue(reader.waitFor(120, TimeUnit.SECONDS), "the reader that waited finished");
            String read = new String(reader.getInputStream().readAllBytes());
            assertTrue(read.startsWith("kept across a restart"), read);

            second.destroy(); // SIGTERM: stops and deletes every device
            assertTrue(second.waitFor(120, TimeUnit.SECONDS), "the server stopped");
            assertEquals(0, second.exitValue(), Files.readString(log2));
            assertFalse(Vm.deviceExists(21), "device 21 deleted");
        } finally {
            for (Process p : new Process[] {reader, first, second}) {
                if (p != null) {
                    p.destroyForcibly();
                }
            }
            Files.deleteIfExists(log1);
            Files.deleteIfExists(log2);
            Vm.removeEveryDevice();
            Vm.sh(10, "rm -rf " + dir);
        }
    }

    private static Process start(Path conf, Path log) throws IOException {
        assertTrue(Files.exists(UbdJvm.JAR), UbdJvm.JAR + " is built (mvn package)");
        List<String> cmd = UbdJvm.command("serve", "--config", conf.toString(), "--json");
        return new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
    }

    /** Sends SIGHUP and waits for the {@code reloaded} event number {@code nth} of this process's log. */
    private static JsonNode hangUp(Process p, Path log, int nth) throws Exception {
        Vm.run(10, "kill", "-HUP", Long.toString(p.pid())).requireSuccess();
        return awaitEvent(p, log, "reloaded", nth);
    }

    /** Waits for the JSON event {@code event} number {@code nth} (from 1) of the log. */
    private static JsonNode awaitEvent(Process p, Path log, String event, int nth) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (System.nanoTime() < deadline) {
            int seen = 0;
            for (String l : Files.readString(log).lines().toList()) {
                if (l.startsWith("{") && l.endsWith("}")) {
                    JsonNode e = JSON.readTree(l);
                    if (e.path("event").asText().equals(event) && ++seen == nth) {
                        return e;
                    }
                }
            }
            assertTrue(p.isAlive(), "ubd serve --config ended: " + Files.readString(log));
            Thread.sleep(200);
        }
        throw new AssertionError("no " + event + " event number " + nth + ": " + Files.readString(log));
    }

    private static void awaitLog(Process p, Path log, String text) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!Files.readString(log).contains(text)) {
            assertTrue(p.isAlive() && System.nanoTime() < deadline, "no '" + text + "' in: " + Files.readString(log));
            Thread.sleep(200);
        }
    }
}

package dev.reactorubd.samples;

import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packaged command, as a user runs it: {@code java -jar samples/target/ubd.jar serve ...}, then SIGTERM. */
@DeviceTest
class ServeCommandDeviceTest {
    private static final Pattern DEVICE = Pattern.compile("(/dev/ublkb\\d+)");

    @Test
    void serveMemoryTargetUntilSigterm() throws Exception {
        Path jar = Path.of("samples/target/ubd.jar").toAbsolutePath();
        assertTrue(Files.exists(jar), jar + " is built (mvn package)");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path log = Files.createTempFile(Path.of("/var/tmp"), "ubd-serve", ".log");
        Process p = new ProcessBuilder(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar", jar.toString(),
                "serve", "--target", "memory", "--size", "32M", "--queues", "2", "--depth", "16")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            String device = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
            while (device == null && p.isAlive() && System.nanoTime() < deadline) {
                Matcher m = DEVICE.matcher(Files.readString(log));
                if (m.find()) {
                    device = m.group(1);
                } else {
                    Thread.sleep(100);
                }
            }
            assertNotNull(device, "a line with the device path: " + Files.readString(log));
            Vm.sh(60, "printf 'reactor-ubd sample' | dd of=" + device + " bs=512 conv=sync,fsync 2>&1").requireSuccess();
            Vm.Result back = Vm.sh(60, "dd if=" + device + " bs=512 count=1 iflag=direct 2>/dev/null | head -c 18")
                    .requireSuccess();
            assertEquals("reactor-ubd sample", back.output());
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the server stopped");
            String rest = Files.readString(log);
            assertEquals(0, p.exitValue(), rest);
            assertTrue(rest.contains("stopped " + device), rest);
            assertFalse(Files.exists(Path.of(device)), device + " is gone");
            assertEquals("", Vm.sh(10, "ls /sys/class/ublk-char/").output().trim(), "no ublk device left");
        } finally {
            p.destroyForcibly();
            Files.deleteIfExists(log);
        }
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The Debian package (scripts/package-deb, which scripts/test-all builds before the VM runs) installed with dpkg in
 * the VM, a device served with the command it installs, and its man pages found by man; then removed again.
 *
 * <p>On the newest kernel only: the package is the subject; ServeCommandDeviceTest serves devices with the same jar
 * on every kernel.
 */
@DeviceTest
@NewestKernelOnly
class PackageDeviceTest {
    @Test
    void theInstalledPackageServesADeviceAndItsManPagesAreFound() throws Exception {
        Path deb;
        try (Stream<Path> s = Files.list(Path.of("target"))) {
            deb = s.filter(p -> p.getFileName().toString().matches("reactor-ubd_.*_all\\.deb"))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("no target/reactor-ubd_*_all.deb: run scripts/package-deb"));
        }
        // man-db's trigger would rebuild the whole man index (apropos, whatis) at install and removal: minutes of the
        // emulated CPU over the 9p root, for nothing this test looks at (man -w finds a page without the index). Off in
        // the VM's throw-away root only.
        Vm.sh(30, "rm -f /var/lib/man-db/auto-update").requireSuccess();
        Vm.sh(300, "dpkg -i " + deb + " 2>&1").requireSuccess();
        Process server = null;
        Path log = Files.createTempFile(Path.of("/var/tmp"), "ubd-pkg", ".log");
        try {
            assertTrue(Files.isExecutable(Path.of("/usr/bin/ubd")), "/usr/bin/ubd installed");
            Vm.Result page = Vm.sh(
                            60, "man -w ubd-serve && man -w ubd && man -P cat ubd-serve 2>/dev/null | head -n 40")
                    .requireSuccess();
            assertTrue(page.output().contains("/usr/share/man/man1/ubd-serve.1.gz"), page.output());
            assertTrue(page.output().contains("zero-copy") || page.output().contains("zero\u2010copy"), page.output());
            assertTrue(Files.exists(Path.of("/lib/systemd/system/ubd@.service")), "the template unit installed");

            // The launcher finds the Java 25 of this machine itself (no JAVA_HOME, no UBD_JAVA).
            server = new ProcessBuilder(
                            "env",
                            "-u",
                            "JAVA_HOME",
                            "UBD_JAVA_OPTS=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
                            "/usr/bin/ubd",
                            "serve",
                            "--target",
                            "memory",
                            "--size",
                            "16M",
                            "--json")
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            JsonNode start = null;
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
            while (start == null && server.isAlive() && System.nanoTime() < end) {
                String first = Files.readString(log)
                        .lines()
                        .filter(l -> l.startsWith("{"))
                        .findFirst()
                        .orElse(null);
                if (first != null) {
                    start = new ObjectMapper().readTree(first);
                } else {
                    Thread.sleep(100);
                }
            }
            assertTrue(start != null, "the JSON start line: " + Files.readString(log));
            String dev = start.get("block_device").asText();
            Vm.sh(60, "printf 'from the package' | dd of=" + dev + " bs=512 conv=sync,fsync 2>&1")
                    .requireSuccess();
            Vm.Result back = Vm.sh(60, "dd if=" + dev + " bs=512 count=1 iflag=direct 2>/dev/null | head -c 16")
                    .requireSuccess();
            assertEquals("from the package", back.output());
            server.destroy(); // SIGTERM
            assertTrue(server.waitFor(120, TimeUnit.SECONDS), "the server stopped");
            assertEquals(0, server.exitValue(), Files.readString(log));
            assertFalse(Files.exists(Path.of(dev)), dev + " is gone");
        } finally {
            if (server != null) {
                server.destroyForcibly();
            }
            Files.deleteIfExists(log);
            Vm.sh(300, "dpkg -r reactor-ubd 2>&1");
            Vm.removeEveryDevice();
        }
        assertFalse(Files.exists(Path.of("/usr/bin/ubd")), "removed with dpkg -r");
    }
}

package dev.reactorubd.testing;

import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * Helpers for device tests: shell commands, counts of this process's fds and mappings, and the running kernel's
 * ublk features (tests of a newer feature are skipped, with the reason printed, on a kernel without it).
 */
public final class Vm {
    private static volatile Set<UblkFeature> features;

    private Vm() {}

    /** The running kernel's release, as {@code uname -r} prints it. */
    public static String kernelRelease() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip();
        } catch (IOException e) {
            return System.getProperty("os.version");
        }
    }

    /** The ublk features the running kernel reports (GET_FEATURES), asked once per JVM. */
    public static Set<UblkFeature> features() {
        Set<UblkFeature> f = features;
        if (f == null) {
            try (UbdControl c = UbdControl.open()) {
                f = EnumSet.copyOf(c.features().block(Duration.ofSeconds(60)));
            }
            features = f = Set.copyOf(f);
        }
        return f;
    }

    /**
     * Skips the calling test (or class, from {@code @BeforeAll}) when the running kernel lacks {@code feature}: a
     * JUnit assumption whose message names the feature, the release that added it and this kernel's release. The
     * reason is also printed on stdout, so that it shows in the run's log and not only in the report.
     */
    public static void assumeFeature(UblkFeature feature) {
        boolean has = features().contains(feature);
        String reason = "needs ublk feature " + feature + " (added in Linux " + feature.since() + "); kernel "
                + kernelRelease() + " does not report it";
        if (!has) {
            System.out.println("SKIPPED: " + reason);
            System.out.flush();
        }
        Assumptions.assumeTrue(has, reason);
    }

    /** The result of a command. */
    public record Result(int exitCode, String output) {
        public Result requireSuccess() {
            if (exitCode != 0) {
                throw new AssertionError("command failed with exit code " + exitCode + ":\n" + output);
            }
            return this;
        }
    }

    /** Runs a command, waiting at most {@code timeoutSeconds}; stdout and stderr together. */
    public static Result run(long timeoutSeconds, String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            p.getOutputStream().close();
            // Read while it runs: a command that writes more than a pipe holds (64 KiB) would otherwise block on
            // its output forever, and look hung.
            CompletableFuture<String> out = CompletableFuture.supplyAsync(
                    () -> {
                        try {
                            return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    },
                    r -> {
                        Thread t = new Thread(r, "vm-output"); // ends with the command's output
                        t.setDaemon(true);
                        t.start();
                    });
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                // The shell's children too (fio...), or they would keep devices open and busy.
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                throw new AssertionError("command timed out after " + timeoutSeconds + " s: " + List.of(command)
                        + "; its output so far:\n" + out.getNow("(none)"));
            }
            return new Result(p.exitValue(), out.get(30, TimeUnit.SECONDS));
        } catch (ExecutionException | TimeoutException e) {
            throw new AssertionError("cannot read the output of " + List.of(command), e);
        } catch (IOException e) {
            throw new AssertionError("cannot run " + List.of(command), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** {@code sh -c script}. */
    public static Result sh(long timeoutSeconds, String script) {
        return run(timeoutSeconds, "sh", "-c", script);
    }

    /** The folder of the guest's kernel modules, from the VM harness. */
    public static Path modules() {
        String dir = System.getenv("UBD_VM_MODULES");
        if (dir == null) {
            throw new AssertionError("UBD_VM_MODULES is not set: device tests run inside scripts/vm/ubd-vm");
        }
        return Path.of(dir);
    }

    /** Open file descriptors of this process. */
    public static long openFds() {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** Lines of /proc/self/maps that map a ublk device (none should outlive their device). */
    public static long ublkMappings() {
        try {
            return Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(l -> l.contains("/dev/ublkc"))
                    .count();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * Removes every ublk device on the machine with the CLI ({@code ubd remove --all --async}, which does not wait
     * for a held device's last opener) and waits, up to 60 s, until they are all gone: a test class that left a device
     * behind must not make the next class's "no device left" check fail.
     */
    public static void removeEveryDevice() {
        sh(
                120,
                "ls /sys/class/ublk-char/ 2>/dev/null | grep -q . || exit 0;"
                        + " '" + Path.of(System.getProperty("java.home"), "bin", "java")
                        + "' -jar samples/target/ubd.jar"
                        + " remove --all --async;"
                        + " for i in $(seq 1 120); do ls /sys/class/ublk-char/ 2>/dev/null | grep -q . || exit 0; sleep 0.5; done;"
                        + " echo still there: $(ls /sys/class/ublk-char/)");
    }

    /** Whether a ublk device id exists, by its char device in sysfs. */
    public static boolean deviceExists(int id) {
        return Files.exists(Path.of("/sys/class/ublk-char/ublkc" + id));
    }
}

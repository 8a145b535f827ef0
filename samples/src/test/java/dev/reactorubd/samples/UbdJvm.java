package dev.reactorubd.samples;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The command line of every {@code ubd} process the device tests start: {@code java -jar samples/target/ubd.jar}, C1
 * only and SerialGC (quick to start under emulation, and what the VM's emulated CPU runs reliably:
 * scripts/vm/README.md), with an ahead-of-time cache of the classes (JEP 483) that one training run of
 * {@code ubd serve} loaded and linked.
 *
 * <p>Why: under the VM's emulated CPU a {@code ubd} spends most of its start loading, verifying and linking classes, and
 * the suite starts dozens of them. The cache is made once per test JVM, by the first command asked for: {@code ubd
 * serve --target memory} until its "serving" line, then SIGTERM (so start, serve, stop and delete are all in it), then
 * the JVM's create step. If the training fails, the commands have no cache: the same processes, slower; it is said
 * once on standard output. The JVM's own cache messages are turned off, so that a cache it cannot use (it checks the
 * jar's path and time) changes nothing in the output the tests read. {@code -Dubd.test.aot=false} turns it off.
 */
final class UbdJvm {
    /** The packaged command, by absolute path: the cache records the class path as it was given. */
    static final Path JAR = Path.of("samples/target/ubd.jar").toAbsolutePath();

    private UbdJvm() {}

    /** {@code java [options] -jar ubd.jar ARGS...}, the options being the suite's and the cache's. */
    static List<String> command(String... args) {
        return command(List.of(), args);
    }

    /** {@link #command(String...)} with more JVM options ({@code jvmOptions}, before {@code -jar}). */
    static List<String> command(List<String> jvmOptions, String... args) {
        List<String> cmd = base();
        cmd.addAll(Cache.OPTIONS);
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-jar", JAR.toString()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    /** {@link #command(String...)} as one line for {@code sh -c}, every word in single quotes. */
    static String shellLine(String... args) {
        StringBuilder line = new StringBuilder();
        for (String a : command(args)) {
            if (a.indexOf('\'') >= 0) {
                throw new IllegalArgumentException("a word with a single quote: " + a);
            }
            line.append(line.isEmpty() ? "" : " ").append('\'').append(a).append('\'');
        }
        return line.toString();
    }

    private static List<String> base() {
        return new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC"));
    }

    /** The cache's options, made on first use. */
    private static final class Cache {
        static final List<String> OPTIONS =
                Boolean.parseBoolean(System.getProperty("ubd.test.aot", "true")) ? train() : List.of();
    }

    private static List<String> train() {
        long start = System.nanoTime();
        try {
            Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-aot");
            Path conf = dir.resolve("ubd.aotconf");
            Path cache = dir.resolve("ubd.aot");
            Path log = dir.resolve("training.log");
            List<String> record = base();
            record.addAll(List.of(
                    "-XX:AOTMode=record",
                    "-XX:AOTConfiguration=" + conf,
                    "-jar",
                    JAR.toString(),
                    "serve",
                    "--target",
                    "memory",
                    "--size",
                    "16M"));
            Process p = new ProcessBuilder(record)
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            try {
                try {
                    UbdProcesses.awaitServing(p, log);
                } catch (AssertionError noServingLine) {
                    return without("the training `ubd serve` printed no serving line", log);
                }
                p.destroy(); // SIGTERM: it stops and deletes its device, and writes the configuration as it exits
                if (!p.waitFor(120, TimeUnit.SECONDS)) {
                    return without("the training `ubd serve` did not stop within 120 s of SIGTERM", log);
                }
            } finally {
                p.destroyForcibly();
            }
            List<String> create = base();
            create.addAll(List.of(
                    "-XX:AOTMode=create",
                    "-XX:AOTConfiguration=" + conf,
                    "-XX:AOTCache=" + cache,
                    "-jar",
                    JAR.toString()));
            Process c = new ProcessBuilder(create)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                    .start();
            if (!c.waitFor(300, TimeUnit.SECONDS)) {
                c.destroyForcibly();
                return without("creating the cache took over 300 s", log);
            }
            if (c.exitValue() != 0 || !Files.isRegularFile(cache)) {
                return without("creating the cache failed (exit status " + c.exitValue() + ")", log);
            }
            System.out.printf(
                    "ubd processes use the AOT cache %s (%d MiB, made in %d s)%n",
                    cache, Files.size(cache) >> 20, TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start));
            return List.of("-XX:AOTCache=" + cache, "-Xlog:aot*=off,cds*=off");
        } catch (IOException e) {
            System.out.println("ubd processes start without an AOT cache: " + e);
            return List.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return List.of();
        }
    }

    private static List<String> without(String why, Path log) throws IOException {
        System.out.println("ubd processes start without an AOT cache: " + why + "; the training's output:\n"
                + Files.readString(log));
        return List.of();
    }
}

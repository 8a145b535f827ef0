package dev.reactorubd.samples;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Device tests' `ubd` processes: the packaged jar started as a user would, and its "serving" line awaited. */
final class UbdProcesses {
    private static final Pattern SERVING = Pattern.compile("serving (/dev/ublkb(\\d+))");

    private UbdProcesses() {}

    /** A started `ubd` and the id of the device it serves. */
    record Started(Process process, int id) {}

    /** Kills every process the tests started, and their children (SIGKILL): what an {@code @AfterEach} does first. */
    static void killAll(List<Process> processes) {
        processes.forEach(p -> {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        });
    }

    /**
     * Starts {@code ubd ARGS...} (C1 only and SerialGC: quick to start under emulation) with its output in {@code log},
     * adds it to {@code processes} (for the test's clean-up) and waits, at most 180 s, for its "serving /dev/ublkbN"
     * line.
     */
    static Started start(List<Process> processes, Path log, String... args) throws IOException, InterruptedException {
        return start(processes, log, List.of(), args);
    }

    /** {@link #start(List, Path, String...)} with more JVM options ({@code jvmOptions}, before {@code -jar}). */
    static Started start(List<Process> processes, Path log, List<String> jvmOptions, String... args)
            throws IOException, InterruptedException {
        return awaitServing(processes, log, UbdJvm.command(jvmOptions, args));
    }

    /**
     * Starts {@code java -cp TEST_CLASSPATH mainClass ARGS...} (a server of the tests' own, such as {@link
     * SilentServer}) as {@link #start} does, and waits for its "serving /dev/ublkbN" line.
     */
    static Started startMain(List<Process> processes, Path log, Class<?> mainClass, String... args)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "--enable-native-access=ALL-UNNAMED",
                "-cp",
                System.getProperty("java.class.path"),
                mainClass.getName()));
        cmd.addAll(List.of(args));
        return awaitServing(processes, log, cmd);
    }

    private static Started awaitServing(List<Process> processes, Path log, List<String> cmd)
            throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        processes.add(p);
        return awaitServing(p, log);
    }

    /** Waits, at most 180 s, for the "serving /dev/ublkbN" line of {@code p}, whose output goes to {@code log}. */
    static Started awaitServing(Process p, Path log) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (p.isAlive() && System.nanoTime() < deadline) {
            Matcher m = SERVING.matcher(Files.readString(log));
            if (m.find()) {
                return new Started(p, Integer.parseInt(m.group(2)));
            }
            Thread.sleep(100);
        }
        throw new AssertionError("no 'serving' line from process " + p.pid() + ":\n" + Files.readString(log));
    }
}

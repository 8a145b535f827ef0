package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.testing.Cases;
import dev.reactorubd.testing.Gen;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIf;
import picocli.CommandLine;

/**
 * Arbitrary command lines, real verbs and options mixed with garbage values and stray words, through the command
 * line's own parse and error path: each one ends (no hang), throws nothing out of {@code execute}, and exits with a
 * documented status; every failure prints exactly one line on stderr, {@code ubd: } and a message that is not an
 * unexpected exception's. On this host there is no ublk: the verbs that get as far as the kernel end with status 3.
 * Targets are kept harmless: files only in a temporary directory, NBD servers only on closed local ports.
 */
@DisabledIf(
        value = "dev.reactorubd.samples.UbdCommandProperties#hasUblk",
        disabledReason = "this machine has ublk: generated command lines could touch real devices")
class UbdCommandProperties {
    private static final Set<Integer> DOCUMENTED = Set.of(
            ExitCodes.OK,
            ExitCodes.FAILURE,
            ExitCodes.USAGE,
            ExitCodes.NO_UBLK,
            ExitCodes.PERMISSION,
            ExitCodes.DEVICE);
    private static Path dir;

    /** With ublk here, a generated command line could create, take over or remove real devices: skip. */
    static boolean hasUblk() {
        return Files.exists(Path.of("/dev/ublk-control"));
    }

    @BeforeAll
    static void makeFiles() throws IOException {
        dir = Files.createTempDirectory("ubd-cli-props");
        Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
    }

    @AfterAll
    static void removeFiles() throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            all.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }

    private record Run(int status, String out, String err) {}

    @Test
    void anyCommandLineEndsWithADocumentedStatusAndOneErrorLine() {
        Cases.forAll(150, commandLines(), UbdCommandProperties::check);
    }

    private static void check(List<String> args) {
        Run r = run(args);
        assertTrue(DOCUMENTED.contains(r.status()), args + ": undocumented status " + r.status() + "; " + r.err());
        assertFalse(r.err().contains("\tat "), args + ": no stack trace: " + r.err());
        if (r.status() != ExitCodes.OK) {
            List<String> lines = r.err().lines().toList();
            assertEquals(1, lines.size(), args + ": one error line: " + r.err());
            String line = lines.getFirst();
            assertTrue(line.startsWith("ubd: ") && line.length() > 10, args + ": " + line);
            assertFalse(
                    line.matches("ubd: [A-Z]\\w*(Exception|Error)(: .*)?"),
                    args + ": an error the command line did not expect: " + line);
            // Nothing here fails at run time: without ublk, what is not a usage error stops at the kernel.
            assertTrue(
                    r.status() == ExitCodes.USAGE || r.status() == ExitCodes.NO_UBLK,
                    args + ": status " + r.status() + ": " + line);
        }
    }

    /** Runs the command line on another thread, bounded: an exception out of execute, or a hang, fails. */
    private static Run run(List<String> args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Thread t = new Thread(
                () -> {
                    try {
                        CommandLine cmd = UbdCommand.commandLine();
                        cmd.setOut(new PrintWriter(out, true));
                        cmd.setErr(new PrintWriter(err, true));
                        status.complete(cmd.execute(args.toArray(String[]::new)));
                    } catch (Throwable e) {
                        status.completeExceptionally(e);
                    }
                },
                "ubd-cli-property");
        t.setDaemon(true);
        t.start();
        try {
            return new Run(status.get(60, TimeUnit.SECONDS), out.toString(), err.toString());
        } catch (TimeoutException e) {
            throw new AssertionError(args + " did not end within 60 s; stderr so far: " + err, e);
        } catch (ExecutionException e) {
            throw new AssertionError(args + " threw out of execute", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(args + ": interrupted", e);
        }
    }

    static Gen<List<String>> commandLines() {
        // A well-formed start for each verb (so that many get past the parser), then options of any verb and stray
        // words, with garbage values; now and then all of it shuffled, or nothing but garbage.
        Gen<List<String>> start = Gen.oneOf(
                sizes().map(s -> List.of("serve", "--target", "memory", "--size", s)),
                sizes().map(s -> List.of("serve", "--target", "null", "--size", s)),
                filePaths().map(f -> List.of("serve", "--target", "file", "--file", f)),
                uris().map(u -> List.of("serve", "--target", "nbd", "--uri", u)),
                Gen.of("mirror", "stripe", "concat")
                        .flatMap(t -> specs().list(0, 3).map(specs -> {
                            List<String> l = new ArrayList<>(List.of("serve", "--target", t));
                            specs.forEach(spec -> l.addAll(List.of(t.equals("mirror") ? "--replica" : "--part", spec)));
                            return l;
                        })),
                numbers().map(n -> List.of("recover", "--id", n, "--target", "memory", "--size", "8M")),
                Gen.of(List.of("list"), List.of("list", "-v"), List.of("list", "--json", "--verbose")),
                numbers().list(0, 3).map(ids -> {
                    List<String> l = new ArrayList<>(List.of("remove"));
                    l.addAll(ids);
                    return l;
                }),
                Gen.of(
                        List.of("remove", "--all"),
                        List.of("remove", "--all", "--async"),
                        List.of("features"),
                        List.of("completion"),
                        List.of(),
                        List.of("--help"),
                        List.of("--version"),
                        List.of("help", "serve"),
                        List.of("serve", "--help")));
        Gen<List<String>> option = Gen.<List<String>>weighted()
                .add(
                        2,
                        valued(
                                "--target",
                                Gen.of(
                                        "null", "memory", "file", "nbd", "mirror", "stripe", "concat", "MEMORY",
                                        "bogus", "")))
                .add(2, valued("--size", sizes()))
                .add(1, valued("--file", filePaths()))
                .add(1, valued("--uri", uris()))
                .add(1, valued(Gen.of("--replica", "--part"), specs()))
                .add(2, valued(Gen.of("--chunk", "--cache", "--rate-bytes"), sizes()))
                .add(2, valued(Gen.of("--request-timeout", "--timeout"), durations()))
                .add(
                        3,
                        valued(
                                Gen.of(
                                        "--queues",
                                        "--depth",
                                        "--block-size",
                                        "--id",
                                        "--reconnects",
                                        "--retry",
                                        "--rate-iops"),
                                numbers()))
                .add(1, valued("--copy", Gen.of("SYSCALL", "IO_URING", "io_uring", "bogus")))
                .add(
                        2,
                        Gen.of(
                                        "--direct",
                                        "--read-only",
                                        "--recoverable",
                                        "--single-issuer",
                                        "--no-single-issuer",
                                        "--status",
                                        "--no-status",
                                        "-v",
                                        "--verbose",
                                        "--json",
                                        "--all",
                                        "--async",
                                        "--help",
                                        "--version",
                                        "--bogus",
                                        "-x",
                                        "--")
                                .map(List::of))
                .add(1, Gen.oneOf(numbers(), garbage()).map(List::of));
        Gen<List<List<String>>> options = option.list(0, 4);
        Gen<List<String>> line = r -> {
            List<String> all = new ArrayList<>(start.next(r));
            options.next(r).forEach(all::addAll);
            return List.copyOf(all);
        };
        return Gen.<List<String>>weighted()
                .add(8, line)
                .add(1, Gen.shuffled(line))
                .add(1, Gen.oneOf(garbage(), numbers()).list(0, 5));
    }

    private static Gen<List<String>> valued(String name, Gen<String> values) {
        return valued(Gen.just(name), values);
    }

    private static Gen<List<String>> valued(Gen<String> names, Gen<String> values) {
        return names.flatMap(n -> values.flatMap(v -> Gen.of(List.of(n, v), List.of(n + "=" + v), List.of(n))));
    }

    private static Gen<String> sizes() {
        return Gen.<String>weighted()
                .add(3, Gen.of("4096", "64K", "1M", "8M", "1G"))
                .add(
                        2,
                        Gen.of(
                                "0",
                                "-1",
                                "1",
                                "511",
                                "512",
                                "1T",
                                "16T",
                                "8E",
                                "1.5M",
                                "9223372036854775807",
                                "99999999999999999999",
                                "M",
                                "abc",
                                ""))
                .add(1, Gen.longs(1, 1L << 42).map(String::valueOf));
    }

    private static Gen<String> durations() {
        return Gen.<String>weighted()
                .add(2, Gen.of("1s", "500ms", "2m", "1h"))
                .add(
                        2,
                        Gen.of(
                                "0",
                                "0s",
                                "0ms",
                                "-1s",
                                "-5m",
                                "s",
                                "ms",
                                "abc",
                                "9999999999999999h",
                                "9223372036854775807ms",
                                ""));
    }

    private static Gen<String> numbers() {
        return Gen.<String>weighted()
                .add(2, Gen.of("1", "2", "4", "64", "128"))
                .add(
                        2,
                        Gen.of(
                                "0",
                                "-1",
                                "-2",
                                "4096",
                                "4097",
                                "1048576",
                                "2147483647",
                                "2147483648",
                                "-2147483649",
                                "1e3",
                                "x",
                                ""))
                .add(1, Gen.anyInt().map(String::valueOf));
    }

    private static Gen<String> filePaths() {
        return Gen.of("disk.img", "new.img", "missing/below.img", ".", "")
                .map(f -> f.isEmpty() ? f : dir.resolve(f).toString());
    }

    private static Gen<String> uris() {
        return Gen.of(
                "nbd://127.0.0.1:1/x",
                "nbd://127.0.0.1:1",
                "nbd+unix:///x?socket=/nonexistent.sock",
                "nbd://",
                "nbd://127.0.0.1:99999/x",
                "nbd://[::1/x",
                "http://127.0.0.1/x",
                "",
                "bogus");
    }

    private static Gen<String> specs() {
        return r -> Gen.of(
                        "memory:1M",
                        "null:64K",
                        "memory:",
                        "null",
                        "file:" + dir.resolve("p.img"),
                        "file:" + dir.resolve("disk.img") + "?direct",
                        "file:",
                        "nbd://127.0.0.1:1/x",
                        "mirror(memory:1M,memory:1M)",
                        "stripe(",
                        "concat()",
                        "bogus",
                        "memory:-1",
                        "memory:1T",
                        "")
                .next(r);
    }

    /** Words with no ':' or '/', so that no garbage names a file or a server. */
    private static Gen<String> garbage() {
        return Gen.strings("abcXYZ019-_=. %", 0, 12);
    }
}

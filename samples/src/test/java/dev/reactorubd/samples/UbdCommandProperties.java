package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import net.jqwik.api.lifecycle.LifecycleContext;
import net.jqwik.api.lifecycle.SkipExecutionHook;
import net.jqwik.api.lifecycle.AddLifecycleHook;
import net.jqwik.api.statistics.Statistics;
import picocli.CommandLine;

/**
 * Arbitrary command lines, real verbs and options mixed with garbage values and stray words, through the command
 * line's own parse and error path: each one ends (no hang), throws nothing out of {@code execute}, and exits with a
 * documented status; every failure prints exactly one line on stderr, {@code ubd: } and a message that is not an
 * unexpected exception's. On this host there is no ublk: the verbs that get as far as the kernel end with status 3.
 * Targets are kept harmless: files only in a temporary directory, NBD servers only on closed local ports.
 */
@AddLifecycleHook(UbdCommandProperties.OnlyWithoutUblk.class)
class UbdCommandProperties {
    private static final Set<Integer> DOCUMENTED = Set.of(ExitCodes.OK, ExitCodes.FAILURE, ExitCodes.USAGE,
            ExitCodes.NO_UBLK, ExitCodes.PERMISSION, ExitCodes.DEVICE);
    private static Path dir;

    /** With ublk here, a generated command line could create, take over or remove real devices: skip. */
    static final class OnlyWithoutUblk implements SkipExecutionHook {
        @Override
        public SkipResult shouldBeSkipped(LifecycleContext context) {
            return Files.exists(Path.of("/dev/ublk-control"))
                    ? SkipResult.skip("this machine has ublk: generated command lines could touch real devices")
                    : SkipResult.doNotSkip();
        }
    }

    @BeforeContainer
    static void makeFiles() throws IOException {
        dir = Files.createTempDirectory("ubd-cli-props");
        Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
    }

    @AfterContainer
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

    private record Run(int status, String out, String err) {
    }

    @Property(tries = 150)
    void anyCommandLineEndsWithADocumentedStatusAndOneErrorLine(@ForAll("commandLines") List<String> args)
            throws Exception {
        Run r = run(args);
        Statistics.label("status").collect(r.status());
        assertTrue(DOCUMENTED.contains(r.status()), args + ": undocumented status " + r.status() + "; " + r.err());
        assertFalse(r.err().contains("\tat "), args + ": no stack trace: " + r.err());
        if (r.status() != ExitCodes.OK) {
            List<String> lines = r.err().lines().toList();
            assertEquals(1, lines.size(), args + ": one error line: " + r.err());
            String line = lines.getFirst();
            assertTrue(line.startsWith("ubd: ") && line.length() > 10, args + ": " + line);
            assertFalse(line.matches("ubd: [A-Z]\\w*(Exception|Error)(: .*)?"),
                    args + ": an error the command line did not expect: " + line);
            // Nothing here fails at run time: without ublk, what is not a usage error stops at the kernel.
            assertTrue(r.status() == ExitCodes.USAGE || r.status() == ExitCodes.NO_UBLK,
                    args + ": status " + r.status() + ": " + line);
        }
    }

    /** Runs the command line on another thread, bounded: an exception out of execute, or a hang, fails. */
    private static Run run(List<String> args) throws Exception {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                CommandLine cmd = UbdCommand.commandLine();
                cmd.setOut(new PrintWriter(out, true));
                cmd.setErr(new PrintWriter(err, true));
                status.complete(cmd.execute(args.toArray(String[]::new)));
            } catch (Throwable e) {
                status.completeExceptionally(e);
            }
        }, "ubd-cli-property");
        t.setDaemon(true);
        t.start();
        try {
            return new Run(status.get(60, TimeUnit.SECONDS), out.toString(), err.toString());
        } catch (TimeoutException e) {
            throw new AssertionError(args + " did not end within 60 s; stderr so far: " + err, e);
        } catch (ExecutionException e) {
            throw new AssertionError(args + " threw out of execute", e.getCause());
        }
    }

    @Provide
    Arbitrary<List<String>> commandLines() {
        // A well-formed start for each verb (so that many get past the parser), then options of any verb and stray
        // words, with garbage values; now and then all of it shuffled, or nothing but garbage.
        Arbitrary<List<String>> start = Arbitraries.oneOf(
                sizes().map(s -> List.of("serve", "--target", "memory", "--size", s)),
                sizes().map(s -> List.of("serve", "--target", "null", "--size", s)),
                filePaths().map(f -> List.of("serve", "--target", "file", "--file", f)),
                uris().map(u -> List.of("serve", "--target", "nbd", "--uri", u)),
                Arbitraries.of("mirror", "stripe", "concat").flatMap(t -> specs().list().ofMaxSize(3).map(specs -> {
                    List<String> l = new ArrayList<>(List.of("serve", "--target", t));
                    specs.forEach(spec -> l.addAll(List.of(t.equals("mirror") ? "--replica" : "--part", spec)));
                    return l;
                })),
                numbers().map(n -> List.of("recover", "--id", n, "--target", "memory", "--size", "8M")),
                Arbitraries.of(List.of("list"), List.of("list", "-v"), List.of("list", "--json", "--verbose")),
                numbers().list().ofMaxSize(3).map(ids -> {
                    List<String> l = new ArrayList<>(List.of("remove"));
                    l.addAll(ids);
                    return l;
                }),
                Arbitraries.of(List.of("remove", "--all"), List.of("remove", "--all", "--async"), List.of("features"),
                        List.of("completion"), List.of(), List.of("--help"), List.of("--version"),
                        List.of("help", "serve"), List.of("serve", "--help")));
        Arbitrary<List<String>> option = Arbitraries.frequencyOf(
                Tuple.of(2, valued("--target", Arbitraries.of("null", "memory", "file", "nbd", "mirror", "stripe",
                        "concat", "MEMORY", "bogus", ""))),
                Tuple.of(2, valued("--size", sizes())),
                Tuple.of(1, valued("--file", filePaths())),
                Tuple.of(1, valued("--uri", uris())),
                Tuple.of(1, valued(Arbitraries.of("--replica", "--part"), specs())),
                Tuple.of(2, valued(Arbitraries.of("--chunk", "--cache", "--rate-bytes"), sizes())),
                Tuple.of(2, valued(Arbitraries.of("--request-timeout", "--timeout"), durations())),
                Tuple.of(3, valued(Arbitraries.of("--queues", "--depth", "--block-size", "--id", "--reconnects",
                        "--retry", "--rate-iops"), numbers())),
                Tuple.of(1, valued("--copy", Arbitraries.of("SYSCALL", "IO_URING", "io_uring", "bogus"))),
                Tuple.of(2, Arbitraries.of("--direct", "--read-only", "--recoverable", "--single-issuer",
                        "--no-single-issuer", "--status", "--no-status", "-v", "--verbose", "--json", "--all",
                        "--async", "--help", "--version", "--bogus", "-x", "--").map(List::of)),
                Tuple.of(1, Arbitraries.oneOf(numbers(), garbage()).map(List::of)));
        Arbitrary<List<String>> line = Combinators.combine(start, option.list().ofMaxSize(4)).as((s, opts) -> {
            List<String> all = new ArrayList<>(s);
            opts.forEach(all::addAll);
            return all;
        });
        return Arbitraries.frequencyOf(Tuple.of(8, line),
                Tuple.of(1, line.flatMap(Arbitraries::shuffle)),
                Tuple.of(1, Arbitraries.oneOf(garbage(), numbers()).list().ofMaxSize(5)));
    }

    private static Arbitrary<List<String>> valued(String name, Arbitrary<String> values) {
        return valued(Arbitraries.just(name), values);
    }

    private static Arbitrary<List<String>> valued(Arbitrary<String> names, Arbitrary<String> values) {
        return names.flatMap(n -> values.flatMap(v -> Arbitraries.of(List.of(n, v), List.of(n + "=" + v),
                List.of(n))));
    }

    private static Arbitrary<String> sizes() {
        return Arbitraries.frequencyOf(Tuple.of(3, Arbitraries.of("4096", "64K", "1M", "8M", "1G")),
                Tuple.of(2, Arbitraries.of("0", "-1", "1", "511", "512", "1T", "16T", "8E", "1.5M",
                        "9223372036854775807", "99999999999999999999", "M", "abc", "")),
                Tuple.of(1, Arbitraries.longs().between(1, 1L << 42).map(String::valueOf)));
    }

    private static Arbitrary<String> durations() {
        return Arbitraries.frequencyOf(Tuple.of(2, Arbitraries.of("1s", "500ms", "2m", "1h")),
                Tuple.of(2, Arbitraries.of("0", "0s", "0ms", "-1s", "-5m", "s", "ms", "abc", "9999999999999999h",
                        "9223372036854775807ms", "")));
    }

    private static Arbitrary<String> numbers() {
        return Arbitraries.frequencyOf(Tuple.of(2, Arbitraries.of("1", "2", "4", "64", "128")),
                Tuple.of(2, Arbitraries.of("0", "-1", "-2", "4096", "4097", "1048576", "2147483647", "2147483648",
                        "-2147483649", "1e3", "x", "")),
                Tuple.of(1, Arbitraries.integers().map(String::valueOf)));
    }

    private Arbitrary<String> filePaths() {
        return Arbitraries.of("disk.img", "new.img", "missing/below.img", ".", "").map(f -> f.isEmpty() ? f
                : dir.resolve(f).toString());
    }

    private static Arbitrary<String> uris() {
        return Arbitraries.of("nbd://127.0.0.1:1/x", "nbd://127.0.0.1:1", "nbd+unix:///x?socket=/nonexistent.sock",
                "nbd://", "nbd://127.0.0.1:99999/x", "nbd://[::1/x", "http://127.0.0.1/x", "", "bogus");
    }

    private Arbitrary<String> specs() {
        return Arbitraries.of("memory:1M", "null:64K", "memory:", "null", "file:" + dir.resolve("p.img"),
                "file:" + dir.resolve("disk.img") + "?direct", "file:", "nbd://127.0.0.1:1/x",
                "mirror(memory:1M,memory:1M)", "stripe(", "concat()", "bogus", "memory:-1", "memory:1T", "");
    }

    /** Words with no ':' or '/', so that no garbage names a file or a server. */
    private static Arbitrary<String> garbage() {
        return Arbitraries.strings().withChars("abcXYZ019-_=. %").ofMaxLength(12);
    }
}

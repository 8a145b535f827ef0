package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The module descriptors as an embedder meets them: a module of its own, compiled with javac against the core and the
 * targets on the module path, sees the exported packages and not the io_uring layer or the kernel ABI; run on the
 * module path, it serves a file through the test kit (the targets' file backend on the core's io_uring layer), and
 * the JVM's restricted-method warnings name the core's module alone (and Netty's native loader), which the README's
 * grant silences; and Netty's ring is reached, for zero copy and linked commits, once the README's --add-opens opens it.
 */
class ModulePathTest {
    private static final Pattern OURS = Pattern.compile(".*/(reactor-ubd|reactor-ubd-targets)/target/classes/?$|.*/"
            + "(reactor-ubd|reactor-ubd-targets)-[^/]*[0-9T](-SNAPSHOT)?\\.jar$");
    /** What the two modules need at run time (the rest of the test class path is the tests' own). */
    private static final Pattern RUNTIME = Pattern.compile(
            ".*/(netty-(buffer|common|transport|transport-classes-io_uring|transport-native-unix-common|resolver|handler"
                    + "|codec-base)|reactor-core|reactive-streams|slf4j-api|slf4j-simple)-[0-9][^/]*(?<!-linux-x86_64|-linux-aarch_64)"
                    + "\\.jar$");
    /** Netty's native libraries: resources it loads from the class path. */
    private static final Pattern NATIVE = Pattern.compile(".*/netty-transport-native-io_uring-[^/]*linux-[^/]*\\.jar$");

    @TempDir
    static Path dir;

    private static String modulePath;
    private static String classPath;

    @BeforeAll
    static void paths() throws IOException {
        // Written by the build (maven-dependency-plugin), as the VM's device tests use it.
        String cp = Files.readString(Path.of("target/test-classpath.txt")).strip();
        List<String> modules = new ArrayList<>();
        List<String> natives = new ArrayList<>();
        modules.add(Path.of("target/classes").toAbsolutePath().toString());
        for (String entry : cp.split(File.pathSeparator)) {
            if ((OURS.matcher(entry).matches() && !entry.contains("-tests"))
                    || RUNTIME.matcher(entry).matches()) {
                modules.add(entry);
            } else if (NATIVE.matcher(entry).matches()) {
                natives.add(entry);
            }
        }
        assertTrue(
                modules.stream().anyMatch(m -> m.contains("reactor-ubd/") || m.matches(".*/reactor-ubd-[0-9].*")),
                "the core is on the module path: " + modules);
        modulePath = String.join(File.pathSeparator, modules);
        classPath = String.join(File.pathSeparator, natives);
    }

    private static Path source(String module, String requires, String body) throws IOException {
        Path root = dir.resolve(module + "-src");
        Files.createDirectories(root.resolve("probe"));
        Files.writeString(root.resolve("module-info.java"), "module " + module + " { " + requires + " }\n");
        Files.writeString(root.resolve("probe/Main.java"), body);
        return root;
    }

    /** {@return javac's messages; empty when it compiled} */
    private static String compile(Path src, Path out) throws IOException {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        List<String> args = new ArrayList<>(List.of("-d", out.toString(), "--module-path", modulePath, "-Xlint:none"));
        try (var files = Files.walk(src)) {
            files.filter(p -> p.toString().endsWith(".java")).forEach(p -> args.add(p.toString()));
        }
        ByteArrayOutputStream messages = new ByteArrayOutputStream();
        int status = javac.run(null, messages, messages, args.toArray(String[]::new));
        return status == 0 ? "" : messages.toString(StandardCharsets.UTF_8);
    }

    private static final String SERVES_A_FILE = """
            package probe;

            import dev.reactorubd.targets.file.FileBackend;
            import dev.reactorubd.testkit.VirtualDevice;
            import io.netty.buffer.ByteBuf;
            import io.netty.buffer.Unpooled;
            import java.nio.file.Path;
            import java.time.Duration;

            public final class Main {
                public static void main(String[] args) {
                    FileBackend file = FileBackend.open(Path.of(args[0]));
                    VirtualDevice device = VirtualDevice.serve(file, 1, 4);
                    byte[] data = new byte[4096];
                    java.util.Arrays.fill(data, (byte) 0x5a);
                    device.write(0, 8192, Unpooled.wrappedBuffer(data)).block(Duration.ofSeconds(30));
                    ByteBuf back = device.read(0, 8192, 4096).block(Duration.ofSeconds(30));
                    boolean same = back.equals(Unpooled.wrappedBuffer(data));
                    back.release();
                    device.close();
                    file.close().block(Duration.ofSeconds(30));
                    System.out.println("served in " + Main.class.getModule().getName() + " through "
                            + VirtualDevice.class.getModule().getName() + " and "
                            + FileBackend.class.getModule().getName() + ": " + (same ? "same data" : "DIFFERENT DATA")
                            + (device.onIoUring() ? ", on io_uring" : ", on local loops"));
                }
            }
            """;

    @Test
    void anEmbedderSeesTheExportedPackagesAndServesAFileOnTheModulePath() throws Exception {
        Path out = dir.resolve("probe-classes");
        assertEquals(
                "", compile(source("probe", "requires dev.reactorubd.targets;", SERVES_A_FILE), out), "it compiles");
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);

        Run granted = run(out, image, "--enable-native-access=dev.reactorubd,io.netty.common");
        assertEquals(0, granted.exit, granted.output);
        assertTrue(
                granted.output.contains(
                        "served in probe through dev.reactorubd and dev.reactorubd.targets: same data, on io_uring"),
                granted.output);
        assertFalse(granted.output.contains("restricted method"), "the grant covers every call: " + granted.output);
        // Netty's ring stays closed to the library on the module path until it is opened: one INFO line says how.
        assertTrue(
                granted.output.contains("zero copy and linked commits are off")
                        && granted.output.contains(
                                "--add-opens io.netty.transport.classes.io_uring/io.netty.channel.uring=dev.reactorubd"),
                granted.output);
        Run opened = run(
                out,
                image,
                "--enable-native-access=dev.reactorubd,io.netty.common",
                "--add-opens",
                "io.netty.transport.classes.io_uring/io.netty.channel.uring=dev.reactorubd");
        assertEquals(0, opened.exit, opened.output);
        assertTrue(opened.output.contains(": same data, on io_uring"), opened.output);
        assertFalse(opened.output.contains("zero copy and linked commits are off"), opened.output);

        Run unGranted = run(out, image);
        assertEquals(0, unGranted.exit, unGranted.output);
        List<String> modulesWarned = Pattern.compile("called by \\S+ in module (\\S+)")
                .matcher(unGranted.output)
                .results()
                .map(m -> m.group(1))
                .distinct()
                .sorted()
                .collect(Collectors.toList());
        assertEquals(
                List.of("dev.reactorubd", "io.netty.common"),
                modulesWarned,
                "restricted methods are called from the core (and Netty's native loader) only: " + unGranted.output);
    }

    @Test
    void theIoUringLayerAndTheKernelAbiAreNotVisibleToAnEmbedder() throws Exception {
        for (String pkg : List.of("dev.reactorubd.uring.Libc", "dev.reactorubd.sys.UblkIo")) {
            String body = "package probe;\n\npublic final class Main {\n    static final Class<?> C = " + pkg
                    + ".class;\n}\n";
            String name = "hidden" + Math.abs(pkg.hashCode());
            String messages =
                    compile(source(name, "requires dev.reactorubd.targets;", body), dir.resolve(name + "-classes"));
            String p = pkg.substring(0, pkg.lastIndexOf('.'));
            assertTrue(
                    messages.contains("package " + p + " is not visible")
                            || messages.contains(
                                    "package " + p + " is declared in module dev.reactorubd, which does not export it"),
                    "javac refuses " + pkg + ": " + messages);
        }
    }

    private record Run(int exit, String output) {}

    private static Run run(Path classes, Path image, String... jvmArgs) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(Arrays.asList(jvmArgs));
        cmd.addAll(List.of(
                "--module-path",
                classes + File.pathSeparator + modulePath,
                "-cp",
                classPath,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-m",
                "probe/probe.Main",
                image.toString()));
        Path log = Files.createTempFile(dir, "probe", ".log");
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("the probe did not end within 120 s: " + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }
}

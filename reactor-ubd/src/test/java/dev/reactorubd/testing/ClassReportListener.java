package dev.reactorubd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;
import org.opentest4j.TestAbortedException;

/**
 * Writes a JUnit XML report per test class the moment that class finishes, and the list of classes planned when the
 * run starts, so that a run whose JVM dies (the emulated test VM crashes JVMs now and then) still has the results of
 * the classes that finished, and the runner knows which classes did not ({@code scripts/vm/run-device-tests}).
 *
 * <p>Active only when the system property {@code ubd.class.reports} names a directory; loaded by the JUnit platform's
 * ServiceLoader, so it does nothing in Maven's runs.
 */
public final class ClassReportListener implements TestExecutionListener {
    private final Path dir;
    private final Map<String, Suite> suites = new LinkedHashMap<>();
    /** When each test and class started (System.nanoTime()), by unique id: the reports carry their durations. */
    private final Map<String, Long> started = new ConcurrentHashMap<>();

    private TestPlan plan;

    /** The counts and cases of one class. */
    private static final class Suite {
        int tests;
        int failures;
        int errors;
        int skipped;
        final StringBuilder cases = new StringBuilder();
    }

    public ClassReportListener() {
        String d = System.getProperty("ubd.class.reports");
        this.dir = d == null || d.isBlank() ? null : Path.of(d);
    }

    @Override
    public void testPlanExecutionStarted(TestPlan testPlan) {
        if (dir == null) {
            return;
        }
        plan = testPlan;
        TreeSet<String> classes = new TreeSet<>();
        for (TestIdentifier root : testPlan.getRoots()) {
            testPlan.getDescendants(root)
                    .forEach(t -> t.getSource()
                            .filter(ClassSource.class::isInstance)
                            .ifPresent(s -> classes.add(((ClassSource) s).getClassName())));
        }
        write(dir.resolve("PLANNED-" + ProcessHandle.current().pid()), String.join("\n", classes) + "\n");
    }

    @Override
    public void executionStarted(TestIdentifier t) {
        if (dir != null) {
            started.put(t.getUniqueId(), System.nanoTime());
        }
    }

    /** Seconds since {@code t} started, as JUnit's XML reports give them. */
    private String seconds(TestIdentifier t) {
        Long start = started.remove(t.getUniqueId());
        return start == null ? "0" : String.format(Locale.ROOT, "%.3f", (System.nanoTime() - start) / 1e9);
    }

    @Override
    public void executionSkipped(TestIdentifier t, String reason) {
        if (dir != null && t.isTest()) {
            Suite s = suite(t);
            s.tests++;
            s.skipped++;
            s.cases
                    .append("  <testcase name=\"")
                    .append(xml(t.getDisplayName()))
                    .append("\"><skipped message=\"")
                    .append(xml(reason))
                    .append("\"/></testcase>\n");
        }
    }

    @Override
    public void executionFinished(TestIdentifier t, TestExecutionResult result) {
        if (dir == null) {
            return;
        }
        Optional<String> className =
                t.getSource().filter(ClassSource.class::isInstance).map(s -> ((ClassSource) s).getClassName());
        if (t.isTest()) {
            Suite s = suite(t);
            s.tests++;
            s.cases
                    .append("  <testcase name=\"")
                    .append(xml(t.getDisplayName()))
                    .append("\" time=\"")
                    .append(seconds(t))
                    .append('"');
            switch (result.getStatus()) {
                case SUCCESSFUL -> s.cases.append("/>\n");
                case ABORTED -> {
                    s.skipped++;
                    s.cases
                            .append("><skipped message=\"")
                            .append(xml(reason(result)))
                            .append("\"/></testcase>\n");
                }
                case FAILED -> {
                    boolean assertion = result.getThrowable()
                            .map(AssertionError.class::isInstance)
                            .orElse(false);
                    if (assertion) {
                        s.failures++;
                    } else {
                        s.errors++;
                    }
                    s.cases
                            .append("><")
                            .append(assertion ? "failure" : "error")
                            .append(" message=\"")
                            .append(xml(message(result)))
                            .append("\"/></testcase>\n");
                }
            }
        } else if (className.isPresent()) {
            Suite s = suites.computeIfAbsent(className.get(), k -> new Suite());
            if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                // @BeforeAll or @AfterAll failed: the class did not pass, whatever its tests did.
                s.errors++;
                s.cases
                        .append("  <testcase name=\"[class]\"><error message=\"")
                        .append(xml(message(result)))
                        .append("\"/></testcase>\n");
            } else if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
                // An assumption in @BeforeAll (say, a kernel feature the class needs): its tests never started.
                s.tests++;
                s.skipped++;
                s.cases
                        .append("  <testcase name=\"[class]\"><skipped message=\"")
                        .append(xml(reason(result)))
                        .append("\"/></testcase>\n");
            }
            String body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"" + xml(className.get())
                    + "\" tests=\"" + s.tests + "\" failures=\"" + s.failures + "\" errors=\"" + s.errors
                    + "\" skipped=\"" + s.skipped + "\" time=\"" + seconds(t) + "\">\n" + s.cases + "</testsuite>\n";
            write(dir.resolve("TEST-" + className.get() + ".xml"), body);
        }
    }

    private Suite suite(TestIdentifier t) {
        String cls = t.getSource()
                .filter(MethodSource.class::isInstance)
                .map(s -> ((MethodSource) s).getClassName())
                .orElseGet(() -> plan.getParent(t)
                        .flatMap(TestIdentifier::getSource)
                        .filter(ClassSource.class::isInstance)
                        .map(s -> ((ClassSource) s).getClassName())
                        .orElse("unknown"));
        return suites.computeIfAbsent(cls, k -> new Suite());
    }

    /** Why a test was aborted: an assumption's own message, without the exception's class name. */
    private static String reason(TestExecutionResult r) {
        return r.getThrowable()
                .map(t -> t instanceof TestAbortedException && t.getMessage() != null
                        ? t.getMessage()
                        : String.valueOf(t))
                .orElse(r.getStatus().toString());
    }

    private static String message(TestExecutionResult r) {
        return r.getThrowable().map(String::valueOf).orElse(r.getStatus().toString());
    }

    private static String xml(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (char c : s.toCharArray()) {
            switch (c) {
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '&' -> b.append("&amp;");
                case '"' -> b.append("&quot;");
                default -> b.append(c < 0x20 && c != '\n' && c != '\t' ? ' ' : c);
            }
        }
        return b.toString();
    }

    /** Writes whole files only (through a rename), so that a crash never leaves half a report. */
    private static void write(Path file, String content) {
        try {
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.writeString(tmp, content, StandardCharsets.UTF_8);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}

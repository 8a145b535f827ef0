package dev.reactorubd.testing;

import java.util.List;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestPlan;

/**
 * Installs {@link LeakDetection} when the JUnit platform loads its listeners, before any test class runs; at the end
 * of the run, reports leaks that no class check caught (a listener cannot fail a run: they are printed to stderr).
 * Loaded by the JUnit platform's ServiceLoader.
 */
public final class LeakCheckListener implements TestExecutionListener {
    public LeakCheckListener() {
        LeakDetection.install();
    }

    @Override
    public void testPlanExecutionFinished(TestPlan testPlan) {
        List<String> late = LeakDetection.install().collect();
        if (!late.isEmpty()) {
            System.err.println(
                    "LEAKS found after the last test class (not attributed to a class):\n" + String.join("\n", late));
        }
    }
}

package dev.reactorubd;

import static com.tngtech.archunit.library.Architectures.layeredArchitecture;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.core.domain.JavaClasses;
import dev.reactorubd.testing.ArchitectureRules;
import org.junit.jupiter.api.Test;

/**
 * The core's layers, as docs/architecture.md draws them: the kernel ABI ({@code sys}) under everything; the API's
 * own types (this package: errno, operations, exceptions) on it; {@code uring} (the rings, libc, Netty's glue) on
 * those; the control plane ({@code ctrl}) and the queues ({@code io}, reporting to {@code metrics}) beside each
 * other; the server on them; the test kit on top. No package cycles.
 */
class ArchitectureTest {
    private static final JavaClasses MAIN = ArchitectureRules.mainClasses();

    @Test
    void theLayersDependOnlyDownwards() {
        layeredArchitecture()
                .consideringOnlyDependenciesInLayers()
                .layer("sys")
                .definedBy("dev.reactorubd.sys..")
                .layer("api")
                .definedBy("dev.reactorubd")
                .layer("uring")
                .definedBy("dev.reactorubd.uring..")
                .layer("ctrl")
                .definedBy("dev.reactorubd.ctrl..")
                .layer("metrics")
                .definedBy("dev.reactorubd.metrics..")
                .layer("io")
                .definedBy("dev.reactorubd.io..")
                .layer("server")
                .definedBy("dev.reactorubd.server..")
                .layer("testkit")
                .definedBy("dev.reactorubd.testkit..")
                .whereLayer("testkit")
                .mayNotBeAccessedByAnyLayer()
                .whereLayer("server")
                .mayOnlyBeAccessedByLayers("testkit")
                .whereLayer("ctrl")
                .mayOnlyBeAccessedByLayers("server", "testkit")
                .whereLayer("io")
                .mayOnlyBeAccessedByLayers("server", "testkit")
                .whereLayer("metrics")
                .mayOnlyBeAccessedByLayers("io", "server", "testkit")
                .whereLayer("uring")
                .mayOnlyBeAccessedByLayers("ctrl", "io", "server", "testkit")
                .whereLayer("api")
                .mayOnlyBeAccessedByLayers("uring", "ctrl", "metrics", "io", "server", "testkit")
                .check(MAIN);
    }

    @Test
    void noPackageCycles() {
        slices().matching("dev.reactorubd.(**)").should().beFreeOfCycles().check(MAIN);
    }

    @Test
    void deviceTestsCarryTheDeviceTagAndOnlyThey() {
        JavaClasses tests = ArchitectureRules.testClasses();
        ArchitectureRules.DEVICE_TESTS_ARE_TAGGED.check(tests);
        ArchitectureRules.TAGGED_CLASSES_ARE_DEVICE_TESTS.check(tests);
        ArchitectureRules.DEVICE_HELPERS_ONLY_IN_DEVICE_TESTS.check(tests);
    }
}

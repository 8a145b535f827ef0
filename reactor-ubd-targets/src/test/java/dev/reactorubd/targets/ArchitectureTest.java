package dev.reactorubd.targets;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClasses;
import dev.reactorubd.testing.ArchitectureRules;
import org.junit.jupiter.api.Test;

/**
 * The targets' shape: each backend in its package, none using another but through the spec parser (which assembles
 * them all); the composition filters know no protocol; only the backends that issue their own io_uring operations
 * (file, NBD) and the spec parser reach under the core's API, and none drives the control plane.
 */
class ArchitectureTest {
    private static final JavaClasses MAIN = ArchitectureRules.mainClasses()
            .that(DescribedPredicate.describe(
                    "in the targets", c -> c.getPackageName().startsWith("dev.reactorubd.targets")));

    @Test
    void backendsDoNotUseEachOtherButThroughTheSpecParser() {
        slices().matching("dev.reactorubd.targets.(*)..")
                .should()
                .notDependOnEachOther()
                .ignoreDependency(
                        DescribedPredicate.describe(
                                "the spec parser", c -> c.getPackageName().startsWith("dev.reactorubd.targets.spec")),
                        DescribedPredicate.alwaysTrue())
                .check(MAIN);
        slices().matching("dev.reactorubd.targets.(**)")
                .should()
                .beFreeOfCycles()
                .check(MAIN);
    }

    @Test
    void onlyTheIoUringBackendsAndTheSpecParserReachUnderTheApi() {
        noClasses()
                .that()
                .resideInAnyPackage("dev.reactorubd.targets", "dev.reactorubd.targets.compose..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("dev.reactorubd.uring..", "dev.reactorubd.sys..")
                .check(MAIN);
        noClasses()
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("dev.reactorubd.ctrl..")
                .because("a backend serves requests; devices are the application's to add and remove")
                .check(MAIN);
    }

    @Test
    void deviceTestsCarryTheDeviceTagAndOnlyThey() {
        JavaClasses tests = ArchitectureRules.testClasses();
        ArchitectureRules.DEVICE_TESTS_ARE_TAGGED.check(tests);
        ArchitectureRules.TAGGED_CLASSES_ARE_DEVICE_TESTS.check(tests);
        ArchitectureRules.DEVICE_HELPERS_ONLY_IN_DEVICE_TESTS.check(tests);
    }
}

package dev.reactorubd.samples;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClasses;
import dev.reactorubd.testing.ArchitectureRules;
import org.junit.jupiter.api.Test;

/** The samples use the library as an embedder would: never its io_uring layer or the kernel ABI. Device tests carry the tag. */
class ArchitectureTest {
    @Test
    void theSamplesStayAboveTheIoUringLayer() {
        JavaClasses samples = ArchitectureRules.mainClasses()
                .that(DescribedPredicate.describe(
                        "in the samples", c -> c.getPackageName().startsWith("dev.reactorubd.samples")));
        noClasses()
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("dev.reactorubd.uring..", "dev.reactorubd.sys..")
                .check(samples);
    }

    @Test
    void deviceTestsCarryTheDeviceTagAndOnlyThey() {
        JavaClasses tests = ArchitectureRules.testClasses();
        ArchitectureRules.DEVICE_TESTS_ARE_TAGGED.check(tests);
        ArchitectureRules.TAGGED_CLASSES_ARE_DEVICE_TESTS.check(tests);
        ArchitectureRules.DEVICE_HELPERS_ONLY_IN_DEVICE_TESTS.check(tests);
    }
}

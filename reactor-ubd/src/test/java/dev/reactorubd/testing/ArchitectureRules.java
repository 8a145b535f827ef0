package dev.reactorubd.testing;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;

/**
 * The rules every module's tests check on its classes (its {@code ArchitectureTest}): device tests are told from host
 * tests by the {@code device} tag ({@link DeviceTest}), and the name says which is which.
 */
public final class ArchitectureRules {
    private ArchitectureRules() {}

    /** {@return the main classes under {@code dev.reactorubd} on this module's class path (no tests, no jars)} */
    public static JavaClasses mainClasses() {
        return new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
                .importPackages("dev.reactorubd");
    }

    /** {@return this module's test classes under {@code dev.reactorubd} (no jars: the core's test kit is checked there)} */
    public static JavaClasses testClasses() {
        return new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.ONLY_INCLUDE_TESTS)
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
                .importPackages("dev.reactorubd");
    }

    /** A class named {@code *DeviceTest} carries the device tag, and a class with the tag is named so. */
    public static final ArchRule DEVICE_TESTS_ARE_TAGGED = classes()
            .that()
            .haveSimpleNameEndingWith("DeviceTest")
            .and()
            .areTopLevelClasses()
            .and()
            .areNotAnnotations()
            .should()
            .beAnnotatedWith(DeviceTest.class)
            .because("Maven's host run excludes the device tag and the VM runs exactly it: an untagged device test "
                    + "would fail on the host and never run in the VM");

    /** The converse: a top-level class with the tag is a device test (a nested one is the VM half of a host test). */
    public static final ArchRule TAGGED_CLASSES_ARE_DEVICE_TESTS = classes()
            .that()
            .areAnnotatedWith(DeviceTest.class)
            .and()
            .areTopLevelClasses()
            .should()
            .haveSimpleNameEndingWith("DeviceTest")
            .because("the name tells a reader (and scripts/test-all's UBD_DEVICE_TESTS) which tests need ublk");

    /** What needs a real device server is a device test. */
    public static final ArchRule DEVICE_HELPERS_ONLY_IN_DEVICE_TESTS = noClasses()
            .that()
            .areNotAnnotatedWith(DeviceTest.class)
            .and()
            .resideOutsideOfPackage("dev.reactorubd.testing..")
            .and()
            .areTopLevelClasses()
            .should()
            .dependOnClassesThat()
            .belongToAnyOf(Devices.class, DeviceServer.class)
            .because("Devices and DeviceServer open the real driver: a class using them needs the device tag");
}

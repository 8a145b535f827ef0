package dev.reactorubd.testing;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;

/**
 * Marks a test class that needs the real ublk driver. Maven's host run excludes the tag; {@code scripts/test-all}
 * runs exactly these inside the test VM, and fails when none ran.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Tag("device")
public @interface DeviceTest {}

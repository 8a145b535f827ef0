package dev.reactorubd.testing;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;

/**
 * Marks a device test whose subject does not change with the kernel (the Debian package, the management page in a
 * browser, TLS on the NBD client): {@code scripts/test-all} runs it on the newest kernel of its list only, so that
 * each kernel's pass spends its time on what the kernel decides. What such a test drives through ublk is covered on
 * every kernel by the tests it names in its class comment. On a method, that one test alone (its comment says why).
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag(NewestKernelOnly.TAG)
public @interface NewestKernelOnly {
    /** The JUnit tag, which {@code scripts/test-all} excludes on the older kernels. */
    String TAG = "newest-kernel-only";
}

package dev.reactorubd.testing;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails a Jupiter test class when Netty reports a leak once it has run (after its own {@code @AfterAll} methods, so
 * that what it closes there is closed). Registered for every class through the ServiceLoader with
 * {@code junit.jupiter.extensions.autodetection.enabled=true} (set in the parent pom's surefire configuration).
 */
public final class LeakCheckExtension implements AfterAllCallback {
    @Override
    public void afterAll(ExtensionContext context) {
        LeakDetection.install().assertNoLeaks(context.getRequiredTestClass().getName());
    }
}

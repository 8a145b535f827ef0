package dev.reactorubd.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * Without a registry nothing of Micrometer is needed: the library and the test kit serve requests from a class loader
 * that has every jar of the test class path but Micrometer's, where touching any Micrometer class would throw
 * NoClassDefFoundError; and the Micrometer implementation class is never loaded.
 */
class NoMicrometerTest {
    /**
     * Every isolated loader, kept for the life of the JVM: when a loader that loaded Netty's io_uring library is
     * collected, the library's unload hook also unregisters the native methods of the test class path's own copy, and
     * every later io_uring loop fails with UnsatisfiedLinkError (seen once the leak check forced a collection after
     * each test class).
     */
    private static final List<ClassLoader> KEPT = new CopyOnWriteArrayList<>();

    /** A class loader that says which classes it loaded itself. */
    static final class Isolated extends URLClassLoader {
        Isolated(URL[] urls) {
            super("no-micrometer", urls, ClassLoader.getPlatformClassLoader());
        }

        boolean loaded(String name) {
            return findLoadedClass(name) != null;
        }
    }

    @Test
    void servesRequestsWithoutMicrometerOnTheClassPath() throws Exception {
        String path = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<URL> urls = new ArrayList<>();
        int dropped = 0;
        for (String entry : path.split(File.pathSeparator)) {
            if (entry.contains("micrometer")) {
                dropped++;
                continue;
            }
            urls.add(toUrl(entry));
        }
        assertTrue(dropped > 0, "micrometer is on the test class path: " + path);
        // Not closed: the device's loop threads finish shutting down after the probe returns, and load classes then.
        @SuppressWarnings("resource")
        Isolated loader = new Isolated(urls.toArray(URL[]::new));
        KEPT.add(loader);
        {
            assertThrows(
                    ClassNotFoundException.class,
                    () -> loader.loadClass("io.micrometer.core.instrument.MeterRegistry"));
            Class<?> probe = loader.loadClass(NoMicrometerProbe.class.getName());
            assertEquals(loader, probe.getClassLoader());
            @SuppressWarnings("unchecked")
            Callable<Long> run = (Callable<Long>) probe.getDeclaredConstructor().newInstance();
            assertEquals(NoMicrometerProbe.REQUESTS, run.call(), "requests served without Micrometer");
            assertTrue(loader.loaded("dev.reactorubd.io.UbdQueue"), "the queue ran in the isolated loader");
            assertTrue(loader.loaded("dev.reactorubd.metrics.UbdMetrics"), "the SPI was used");
            assertFalse(
                    loader.loaded("dev.reactorubd.metrics.MicrometerMetrics"),
                    "the Micrometer implementation was not loaded");
        }
    }

    private static URL toUrl(String entry) {
        try {
            return new File(entry).toURI().toURL();
        } catch (MalformedURLException e) {
            throw new AssertionError(e);
        }
    }
}

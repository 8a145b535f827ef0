package dev.reactorubd.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Event;
import org.junit.platform.testkit.engine.Events;

/**
 * Proves that the leak check can fail: a buffer leaked on purpose is reported with where it was allocated, and a
 * Jupiter class that leaks one fails (run here through the JUnit test kit, so that this class itself passes).
 */
class LeakDetectionTest {
    /** Set while the test kit runs {@link Leaky}; elsewhere (a class-path scan in the VM) Leaky is disabled. */
    private static volatile boolean insideTestKit;

    @Test
    void theLevelIsParanoidAndTheRecordingFactoryIsInstalledBeforeNettyTookItsDetector() {
        assertEquals(ResourceLeakDetector.Level.PARANOID, ResourceLeakDetector.getLevel());
        List<String> before = LeakDetection.install().collect();
        assertEquals(List.of(), before, "nothing leaked before this test");
        leakABuffer();
        List<String> found = collectUntilFound();
        assertEquals(1, found.size(), found.toString());
        assertTrue(found.get(0).contains("LeakDetectionTest.leakABuffer"), "where it was allocated: " + found);
        assertEquals(List.of(), LeakDetection.install().collect(), "a leak is reported once");
    }

    @Test
    void aReleasedBufferIsNoLeak() {
        ByteBuf b = PooledByteBufAllocator.DEFAULT.heapBuffer(64);
        b.writeLong(42);
        b.release();
        assertEquals(List.of(), LeakDetection.install().collect());
    }

    @Test
    void aJupiterClassThatLeaksFails() {
        insideTestKit = true;
        Events containers;
        try {
            containers = EngineTestKit.engine("junit-jupiter")
                    .configurationParameter("junit.jupiter.extensions.autodetection.enabled", "true")
                    .selectors(selectClass(Leaky.class))
                    .execute()
                    .containerEvents();
        } finally {
            insideTestKit = false;
        }
        List<Event> failed = containers.failed().list();
        assertEquals(1, failed.size(), "the class failed: " + containers.list());
        Throwable why = failed.get(0)
                .getPayload(TestExecutionResult.class)
                .flatMap(TestExecutionResult::getThrowable)
                .orElseThrow();
        assertTrue(why instanceof AssertionError && why.getMessage().contains("Leaky.leaksABuffer"), why.toString());
    }

    static boolean insideTestKit() {
        return insideTestKit;
    }

    /** Leaks a buffer, on purpose; run only by {@link #aJupiterClassThatLeaksFails}. */
    @EnabledIf("dev.reactorubd.testing.LeakDetectionTest#insideTestKit")
    static class Leaky {
        @Test
        void leaksABuffer() {
            PooledByteBufAllocator.DEFAULT.heapBuffer(32).writeInt(7);
        }
    }

    private static void leakABuffer() {
        PooledByteBufAllocator.DEFAULT.heapBuffer(32).writeInt(7);
    }

    /** A collection may leave a young object alone: a few tries. */
    private static List<String> collectUntilFound() {
        List<String> found = new ArrayList<>();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (found.isEmpty() && System.nanoTime() < end) {
            found.addAll(LeakDetection.install().collect());
        }
        assertFalse(found.isEmpty(), "the leaked buffer was reported");
        return found;
    }
}

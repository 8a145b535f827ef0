package dev.reactorubd.testing;

import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetectorFactory;
import io.netty.util.ResourceLeakTracker;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Makes Netty's leak reports something a test can fail on. Netty only logs a leak (a buffer garbage-collected while
 * still retained), and only when a later allocation happens to look: {@link #install()} puts in a detector factory
 * whose detectors also record each report here, and {@link #collect()} forces the reports out (garbage collection,
 * then every detector is made to look) and hands them over.
 *
 * <p>Installed by {@link LeakCheckListener} when the JUnit platform starts, before any test has touched a Netty buffer
 * (the buffer classes take their detector once, when they are first used); checked after every test class by
 * {@link LeakCheckExtension}, which fails the class that leaked. The
 * surefire configuration sets the level to paranoid ({@code -Dio.netty.leakDetection.level=paranoid}: every buffer
 * tracked, every access recorded).
 */
public final class LeakDetection {
    private static final LeakDetection GLOBAL = new LeakDetection();
    private static boolean installed;

    private final Queue<String> leaks = new ConcurrentLinkedQueue<>();
    private final List<ResourceLeakDetector<?>> detectors = new CopyOnWriteArrayList<>();

    LeakDetection() {}

    /**
     * Installs the recording factory, once per JVM. The level is Netty's, from {@code io.netty.leakDetection.level}:
     * the surefire configuration sets paranoid; the device tests in the VM keep Netty's default (sampled), where
     * tracking every buffer would slow the emulated CPU down.
     *
     * @return the JVM's leak record
     */
    public static synchronized LeakDetection install() {
        if (!installed) {
            installed = true;
            ResourceLeakDetectorFactory.setResourceLeakDetectorFactory(GLOBAL.factory());
        }
        return GLOBAL;
    }

    /** {@return a factory whose detectors report to this record as well as to Netty's log} */
    ResourceLeakDetectorFactory factory() {
        return new ResourceLeakDetectorFactory() {
            @Override
            public <T> ResourceLeakDetector<T> newResourceLeakDetector(
                    Class<T> resource, int samplingInterval, long maxActive) {
                RecordingDetector<T> d = new RecordingDetector<>(resource, samplingInterval);
                detectors.add(d);
                return d;
            }
        };
    }

    /**
     * Forces pending leaks to be reported: collects garbage, lets the reference handler queue what was collected,
     * and makes every detector look; a few rounds, for buffers that only become unreachable once others are gone.
     *
     * @return the leaks reported since the last call (each with Netty's record of where the buffer was created and
     *         last touched), now forgotten
     */
    public List<String> collect() {
        for (int round = 0; round < 2; round++) {
            // A collection clears the weak references of every unreachable tracked object at once; the reference
            // handler thread then queues them. Once a sentinel cleared by the same collection is queued, they are.
            ReferenceQueue<Object> sentinelQueue = new ReferenceQueue<>();
            WeakReference<Object> sentinel = new WeakReference<>(new Object(), sentinelQueue);
            System.gc();
            try {
                sentinelQueue.remove(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            Reference.reachabilityFence(sentinel);
            detectors.forEach(LeakDetection::look);
        }
        List<String> out = new ArrayList<>();
        String leak;
        while ((leak = leaks.poll()) != null) {
            out.add(leak);
        }
        return out;
    }

    /**
     * Fails when {@link #collect()} finds leaks.
     *
     * @param where what ran since the last check (a test class), for the message
     * @throws AssertionError naming each leak
     */
    public void assertNoLeaks(String where) {
        List<String> found = collect();
        if (!found.isEmpty()) {
            throw new AssertionError("Netty reported " + found.size() + " leak(s) (a buffer collected while still"
                    + " retained) during " + where + ":\n" + String.join("\n", found));
        }
    }

    /** A detector reports what its reference queue holds whenever it tracks something: track a throwaway. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void look(ResourceLeakDetector<?> detector) {
        Object probe = new Object();
        ResourceLeakTracker tracker = ((ResourceLeakDetector) detector).trackForcibly(probe);
        if (tracker != null) {
            tracker.close(probe);
        }
    }

    /** Netty's detector, which also records its reports. */
    private final class RecordingDetector<T> extends ResourceLeakDetector<T> {
        RecordingDetector(Class<T> resource, int samplingInterval) {
            super(resource, samplingInterval);
        }

        @Override
        protected boolean needReport() {
            return true;
        }

        @Override
        protected void reportTracedLeak(String resourceType, String records) {
            leaks.add("LEAK: a " + resourceType + " was collected while still retained." + records);
            super.reportTracedLeak(resourceType, records);
        }

        @Override
        protected void reportUntracedLeak(String resourceType) {
            leaks.add("LEAK: a " + resourceType + " was collected while still retained (no record of where).");
            super.reportUntracedLeak(resourceType);
        }
    }
}

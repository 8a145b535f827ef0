package dev.reactorubd.testing;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import reactor.blockhound.BlockHound;
import reactor.blockhound.BlockingOperationError;
import reactor.blockhound.integration.BlockHoundIntegration;

/**
 * Records every blocking call BlockHound catches, in any thread, before throwing as BlockHound does. An error
 * thrown on an event loop is only logged by the loop; tests assert on {@link #calls()} so that none goes unseen.
 * Loaded by BlockHound's ServiceLoader when the JUnit platform installs it.
 */
public final class BlockingCallRecorder implements BlockHoundIntegration {
    private static final List<String> CALLS = new CopyOnWriteArrayList<>();

    @Override
    public void applyTo(BlockHound.Builder builder) {
        // Netty's io_uring loop spins (Thread.onSpinWait) while it closes its ring on shutdown: its own teardown, not
        // a request path.
        builder.allowBlockingCallsInside("io.netty.channel.uring.IoUringIoHandler", "closeWakeupGate");
        builder.blockingMethodCallback(method -> {
            CALLS.add(Thread.currentThread().getName() + ": " + method);
            throw new BlockingOperationError(method);
        });
    }

    /** Blocking calls caught so far, as "thread: method". */
    public static List<String> calls() {
        return List.copyOf(CALLS);
    }

    /** Blocking calls caught on threads whose name starts with {@code prefix}. */
    public static List<String> callsOn(String prefix) {
        return CALLS.stream().filter(c -> c.startsWith(prefix)).toList();
    }
}

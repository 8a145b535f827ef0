package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdTesting.WAIT;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.testing.BlockingCallRecorder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;

/**
 * What the NBD host test classes share: backends and servers opened by a test are closed after it (backends first,
 * so that closing them is not a lost connection), and no blocking call happened on a ubd thread.
 */
abstract class NbdHostTest {
    final List<AutoCloseable> toClose = new ArrayList<>();
    private final List<NbdBackend> backends = new ArrayList<>();

    @AfterEach
    void cleanUp() throws Exception {
        for (NbdBackend b : backends) {
            b.close().block(WAIT);
        }
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** Closes {@code c} after the test, in reverse order of registration. */
    <T extends AutoCloseable> T closing(T c) {
        toClose.add(c);
        return c;
    }

    /** Connects, and closes the backend after the test. */
    NbdBackend connect(String uri, NbdOptions options) {
        NbdBackend b = NbdBackend.connect(uri, options).block(WAIT);
        backends.add(b);
        return b;
    }
}

package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/** Rate limits through the test kit, on both queues at once (one budget); timing is checked loosely, from below. */
class RateLimitBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void requestsBeyondTheIopsBudgetAreDelayedNotDropped() {
        RateLimitBackend limited = Backends.from(new MemoryBackend(MIB)).limitRate(100, 0);
        try (VirtualDevice dev = VirtualDevice.serve(limited, 2, 16)) {
            long t0 = System.nanoTime();
            // 40 reads at 100/s: the 100 ms burst passes about 11 at once, the other 29 are 10 ms apart.
            StepVerifier.create(Flux.range(0, 40)
                            .flatMap(i -> dev.read(i % 2, i * 4L * KIB, 4 * KIB), 32)
                            .doOnNext(b -> b.release())
                            .count())
                    .expectNext(40L)
                    .verifyComplete();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 250, "40 requests at 100/s took " + ms + " ms");
            assertTrue(limited.delayed() >= 25, "delayed: " + limited.delayed());
        }
    }

    @Test
    void bytesBeyondTheBandwidthBudgetAreDelayed() {
        RateLimitBackend limited = Backends.from(new MemoryBackend(MIB)).limitRate(0, 512 * KIB);
        try (VirtualDevice dev = VirtualDevice.serve(limited, 2, 16)) {
            long t0 = System.nanoTime();
            // 16 writes of 32 KiB at 512 KiB/s: 62.5 ms each, less the 100 ms burst: the last starts after ~840 ms.
            StepVerifier.create(Flux.range(0, 16)
                            .flatMap(i -> dev.write(i % 2, i * 32L * KIB, buf(bytes(i, 32 * KIB))), 16)
                            .then())
                    .verifyComplete();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 700, "512 KiB at 512 KiB/s took " + ms + " ms");
            for (int i = 0; i < 16; i += 5) {
                assertArrayEquals(bytes(i, 32 * KIB), read(dev, 0, i * 32L * KIB, 32 * KIB));
            }
        }
    }

    @Test
    void zeroMeansUnlimited() {
        RateLimitBackend limited = Backends.from(new MemoryBackend(MIB)).limitRate(0, 0);
        try (VirtualDevice dev = VirtualDevice.serve(limited, 2, 16)) {
            StepVerifier.create(Flux.range(0, 200)
                            .flatMap(i -> dev.read(i % 2, 0, 4 * KIB), 32)
                            .doOnNext(b -> b.release())
                            .count())
                    .expectNext(200L)
                    .verifyComplete();
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
            assertEquals(0, limited.delayed());
        }
    }
}

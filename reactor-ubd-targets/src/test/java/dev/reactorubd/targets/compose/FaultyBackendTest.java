package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.errno;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/** The fault switch through the test kit. */
class FaultyBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void switchesFailWhatTheySayUntilHealed() {
        MemoryBackend mem = new MemoryBackend(MIB);
        FaultyBackend faulty = Backends.from(mem).faults();
        try (VirtualDevice dev = VirtualDevice.serve(faulty, 2, 8)) {
            dev.write(0, 0, buf(bytes(1, 4 * KIB))).block(WAIT);
            faulty.failReads(Errno.ENODATA);
            StepVerifier.create(dev.read(1, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.ENODATA))
                    .verify(WAIT);
            StepVerifier.create(dev.write(0, 0, buf(bytes(2, 4 * KIB)))).verifyComplete();
            faulty.heal().failWrites(Errno.ENOSPC);
            assertArrayEquals(bytes(2, 4 * KIB), read(dev, 0, 0, 4 * KIB));
            StepVerifier.create(dev.write(1, 0, buf(bytes(3, 4 * KIB))))
                    .expectErrorMatches(errno(Errno.ENOSPC))
                    .verify(WAIT);
            StepVerifier.create(dev.discard(1, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.ENOSPC))
                    .verify(WAIT);
            StepVerifier.create(dev.flush(0))
                    .expectErrorMatches(errno(Errno.ENOSPC))
                    .verify(WAIT);
            assertArrayEquals(bytes(2, 4 * KIB), read(dev, 0, 0, 4 * KIB), "a failed write did not reach memory");
            faulty.failAll(Errno.EIO);
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            faulty.heal();
            StepVerifier.create(dev.write(1, 0, buf(bytes(3, 4 * KIB)))).verifyComplete();
            assertEquals(5, faulty.injected());
        }
    }

    @Test
    void everyNthRequestAndAByteRange() {
        FaultyBackend faulty = Backends.from(new MemoryBackend(MIB)).faults();
        try (VirtualDevice dev = VirtualDevice.serve(faulty, 1, 1)) {
            faulty.failEvery(3, Errno.EIO);
            List<Boolean> ok = Flux.range(0, 9)
                    .concatMap(i -> dev.read(0, 0, 4 * KIB)
                            .map(b -> b.release())
                            .thenReturn(true)
                            .onErrorReturn(false))
                    .collectList()
                    .block(WAIT);
            assertEquals(List.of(true, true, false, true, true, false, true, true, false), ok);
            faulty.heal().failRange(64 * KIB, 4 * KIB, Errno.EROFS);
            StepVerifier.create(dev.write(0, 60 * KIB, buf(bytes(1, 8 * KIB))))
                    .expectErrorMatches(errno(Errno.EROFS))
                    .verify(WAIT);
            StepVerifier.create(dev.write(0, 68 * KIB, buf(bytes(1, 8 * KIB)))).verifyComplete();
            StepVerifier.create(dev.read(0, 56 * KIB, 8 * KIB))
                    .consumeNextWith(ByteBuf::release)
                    .verifyComplete();
        }
    }

    @Test
    void delaysAnswers() {
        FaultyBackend faulty = Backends.from(new MemoryBackend(MIB)).faults().delay(Duration.ofMillis(150));
        try (VirtualDevice dev = VirtualDevice.serve(faulty, 1, 4)) {
            long t0 = System.nanoTime();
            StepVerifier.create(dev.write(0, 0, buf(bytes(1, 4 * KIB)))).verifyComplete();
            assertTrue(System.nanoTime() - t0 >= 150_000_000L);
        }
    }
}

package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.direct;
import static dev.reactorubd.targets.compose.TestData.errno;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;

/** Timeouts: in virtual time on the unbound decorator, and with short real durations through the test kit. */
class TimeoutBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void aLateRequestFailsWithEtimedoutAtTheDeadlineInVirtualTime() {
        FaultyBackend slow = Backends.from(new MemoryBackend(MIB)).faults().delay(Duration.ofSeconds(10));
        TimeoutBackend timeout = slow.timeout(Duration.ofSeconds(5));
        StepVerifier.withVirtualTime(() -> timeout.write(0, buf(bytes(1, 4 * KIB)), false))
                .expectSubscription()
                .expectNoEvent(Duration.ofMillis(4999))
                .thenAwait(Duration.ofMillis(1))
                .expectErrorMatches(errno(Errno.ETIMEDOUT))
                .verify(WAIT);
        assertEquals(1, timeout.timedOut());
        slow.heal();
        StepVerifier.withVirtualTime(() -> timeout.flush()).verifyComplete();
    }

    /** Reads that answer only when the test emits their buffer. */
    static final class Answered implements BlockBackend {
        final Sinks.One<ByteBuf> answer = Sinks.one();
        final AtomicInteger calls = new AtomicInteger();

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            calls.incrementAndGet();
            return answer.asMono();
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.empty();
        }
    }

    @Test
    void theLateReadBufferIsReleasedWhenItArrives() {
        Answered backend = new Answered();
        TimeoutBackend timeout = Backends.from(backend).timeout(Duration.ofMillis(50));
        try (VirtualDevice dev = VirtualDevice.serve(timeout, 1, 4)) {
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.ETIMEDOUT))
                    .verify(WAIT);
            ByteBuf late = Unpooled.directBuffer(4 * KIB).writeZero(4 * KIB);
            backend.answer.tryEmitValue(late);
            assertEquals(0, late.refCnt(), "released on arrival");
            assertEquals(1, backend.calls.get());
        }
    }

    @Test
    void aLateWriteStillHasItsDataAndFastRequestsPass() throws InterruptedException {
        MemoryBackend mem = new MemoryBackend(MIB);
        FaultyBackend faulty = Backends.from(mem).faults();
        TimeoutBackend timeout = faulty.timeout(Duration.ofMillis(100));
        try (VirtualDevice dev = VirtualDevice.serve(timeout, 2, 16)) {
            byte[] fast = bytes(1, 8 * KIB);
            StepVerifier.create(dev.write(0, 0, buf(fast))).verifyComplete();
            assertArrayEquals(fast, read(dev, 1, 0, 8 * KIB));

            faulty.delay(Duration.ofMillis(400));
            byte[] slow = bytes(2, 8 * KIB);
            long t0 = System.nanoTime();
            StepVerifier.create(dev.write(1, 64 * KIB, buf(slow)))
                    .expectErrorMatches(errno(Errno.ETIMEDOUT))
                    .verify(WAIT);
            assertTrue(System.nanoTime() - t0 < 350_000_000L, "failed at the deadline, not when the backend answered");
            // The device answered, yet the backend's late write still finds its (retained) data intact.
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (!Arrays.equals(slow, direct(mem, 64 * KIB, 8 * KIB)) && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertArrayEquals(slow, direct(mem, 64 * KIB, 8 * KIB));
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.ETIMEDOUT))
                    .verify(WAIT);
            assertEquals(2, timeout.timedOut());
        }
    }
}

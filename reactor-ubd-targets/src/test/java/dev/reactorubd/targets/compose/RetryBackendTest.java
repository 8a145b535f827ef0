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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** Retries through the test kit, and the backoff in virtual time. */
class RetryBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** Memory whose first {@code failures} requests fail with {@code errno}. */
    static final class Flaky implements BlockBackend {
        final MemoryBackend mem = new MemoryBackend(MIB);
        final AtomicInteger calls = new AtomicInteger();
        final int failures;
        final int errno;

        Flaky(int failures, int errno) {
            this.failures = failures;
            this.errno = errno;
        }

        private <T> Mono<T> maybeFail(Supplier<Mono<T>> ok) {
            return calls.incrementAndGet() <= failures
                    ? Mono.error(new UbdIoException(errno, "flaky, call " + calls.get()))
                    : ok.get();
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return Mono.defer(() -> maybeFail(() -> mem.read(offset, length, allocator)));
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.defer(() -> maybeFail(() -> mem.write(offset, data, fua)));
        }
    }

    @Test
    void succeedsAfterFailuresWithTheSameWriteData() {
        Flaky flaky = new Flaky(2, Errno.EIO);
        RetryBackend retry = Backends.from(flaky).retry(3, Duration.ofMillis(5));
        try (VirtualDevice dev = VirtualDevice.serve(retry, 2, 16)) {
            byte[] data = bytes(1, 16 * KIB);
            StepVerifier.create(dev.write(0, 4 * KIB, buf(data))).verifyComplete();
            assertEquals(3, flaky.calls.get());
            assertEquals(2, retry.retries());
            assertArrayEquals(data, direct(flaky.mem, 4 * KIB, 16 * KIB), "the third try wrote the same bytes");
            assertArrayEquals(data, read(dev, 1, 4 * KIB, 16 * KIB));
        }
    }

    @Test
    void givesUpAfterTheAttemptsWithTheLastError() {
        Flaky flaky = new Flaky(10, Errno.ETIMEDOUT);
        try (VirtualDevice dev = VirtualDevice.serve(Backends.from(flaky).retry(3, Duration.ofMillis(1)), 1, 4)) {
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.ETIMEDOUT))
                    .verify(WAIT);
            assertEquals(3, flaky.calls.get());
        }
    }

    @Test
    void errorsThatCannotSucceedAreNotRetried() {
        for (int e : new int[] {Errno.EINVAL, Errno.EROFS, Errno.EOPNOTSUPP, Errno.ENOSPC}) {
            Flaky flaky = new Flaky(1, e);
            try (VirtualDevice dev = VirtualDevice.serve(Backends.from(flaky).retry(5, Duration.ofMillis(1)), 1, 4)) {
                StepVerifier.create(dev.write(0, 0, buf(bytes(1, 4 * KIB))))
                        .expectErrorMatches(errno(e))
                        .verify(WAIT);
                assertEquals(1, flaky.calls.get(), Errno.name(e) + " is final");
            }
        }
    }

    @Test
    void theBackoffDoublesInVirtualTime() {
        Flaky flaky = new Flaky(2, Errno.EIO);
        RetryBackend retry = Backends.from(flaky).retry(3, Duration.ofSeconds(1), Duration.ofSeconds(10), 0);
        StepVerifier.withVirtualTime(() -> retry.read(0, 4 * KIB, PooledByteBufAllocator.DEFAULT))
                .expectSubscription()
                .then(() -> assertEquals(1, flaky.calls.get()))
                .thenAwait(Duration.ofSeconds(1))
                .then(() -> assertEquals(2, flaky.calls.get()))
                .thenAwait(Duration.ofMillis(1999))
                .then(() -> assertEquals(2, flaky.calls.get(), "the second wait is 2 s"))
                .thenAwait(Duration.ofMillis(1))
                .consumeNextWith(ByteBuf::release)
                .verifyComplete();
        assertEquals(3, flaky.calls.get());
    }

    @Test
    void theWaitsStopGrowingAtTheCap() {
        Flaky flaky = new Flaky(4, Errno.EIO);
        RetryBackend retry = Backends.from(flaky).retry(5, Duration.ofSeconds(1), Duration.ofSeconds(2), 0);
        StepVerifier.withVirtualTime(() -> retry.read(0, 4 * KIB, PooledByteBufAllocator.DEFAULT))
                .expectSubscription()
                .thenAwait(Duration.ofSeconds(1)) // 1 s
                .thenAwait(Duration.ofSeconds(2)) // 2 s
                .then(() -> assertEquals(3, flaky.calls.get()))
                .thenAwait(Duration.ofMillis(1999))
                .then(() -> assertEquals(3, flaky.calls.get(), "capped at 2 s, not 4"))
                .thenAwait(Duration.ofMillis(1))
                .then(() -> assertEquals(4, flaky.calls.get()))
                .thenAwait(Duration.ofSeconds(2))
                .consumeNextWith(ByteBuf::release)
                .verifyComplete();
        assertEquals(5, flaky.calls.get());
        assertEquals(4, retry.retries());
    }

    @Test
    void jitterOnlyLengthensAWaitAndByAtMostItsShare() {
        // Reactor's jitter never waits less than the first backoff, and at most backoff x (1 + jitter).
        for (int run = 0; run < 20; run++) {
            Flaky flaky = new Flaky(1, Errno.EIO);
            RetryBackend retry = Backends.from(flaky).retry(2, Duration.ofSeconds(1), Duration.ofSeconds(10), 0.5);
            StepVerifier.withVirtualTime(() -> retry.read(0, 4 * KIB, PooledByteBufAllocator.DEFAULT))
                    .expectSubscription()
                    .thenAwait(Duration.ofMillis(999))
                    .then(() -> assertEquals(1, flaky.calls.get(), "not before the backoff"))
                    .thenAwait(Duration.ofMillis(501))
                    .consumeNextWith(ByteBuf::release)
                    .verifyComplete();
            assertEquals(2, flaky.calls.get());
        }
    }

    @Test
    void badSettingsAreRefusedWithTheirReason() {
        Flaky flaky = new Flaky(0, Errno.EIO);
        IllegalArgumentException cap = assertThrows(
                IllegalArgumentException.class,
                () -> Backends.from(flaky).retry(3, Duration.ofSeconds(2), Duration.ofSeconds(1), 0.5));
        assertTrue(cap.getMessage().contains("longest wait"), cap.getMessage());
        IllegalArgumentException jitter = assertThrows(
                IllegalArgumentException.class,
                () -> Backends.from(flaky).retry(3, Duration.ofSeconds(1), Duration.ofSeconds(1), 1.5));
        assertTrue(jitter.getMessage().contains("jitter"), jitter.getMessage());
    }
}

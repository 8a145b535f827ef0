package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdClosedException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/** The SQE128 control ring on the host kernel, with operations any Linux answers. */
class ControlRingTest {
    private ControlRing ring;

    @BeforeEach
    void open() {
        ring = ControlRing.open("test-ring", 8);
    }

    @AfterEach
    void close() {
        ring.close();
    }

    @Test
    void nopCompletesWithZero() {
        StepVerifier.create(ring.nop()).expectNext(0).verifyComplete();
        assertEquals(0, ring.inFlight());
    }

    @Test
    void manyOperationsFromManyThreadsAllComplete() {
        // More than the SQ holds, submitted concurrently: every one completes exactly once.
        int n = 2000;
        StepVerifier.create(Flux.range(0, n)
                        .flatMap(i -> ring.nop().subscribeOn(Schedulers.parallel()), 64)
                        .count())
                .expectNext((long) n)
                .verifyComplete();
        assertEquals(0, ring.inFlight());
    }

    @Test
    void uringCmdOnDevNullAnswersZero() {
        int fd = Libc.open("/dev/null", Libc.O_RDWR | Libc.O_CLOEXEC);
        assertTrue(fd >= 0, "open /dev/null: " + fd);
        try {
            StepVerifier.create(ring.submit(uringCmd(fd, 0x1234))).expectNext(0).verifyComplete();
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void uringCmdOnRegularFileAnswersEopnotsupp(@TempDir Path dir) throws IOException {
        Path file = Files.writeString(dir.resolve("f"), "x");
        int fd = Libc.open(file.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        assertTrue(fd >= 0);
        try {
            StepVerifier.create(ring.submit(uringCmd(fd, 0x1234)))
                    .expectNext(-Errno.EOPNOTSUPP)
                    .verifyComplete();
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void anErrorThrownByCompleteFailsOnlyThatOperation() {
        Mono<Integer> failing = ring.submit(new ControlRing.Operation<>() {
            @Override
            public void prepare(MemorySegment sqe, Arena arena) {
                sqe.set(ValueLayout.JAVA_BYTE, IoUringAbi.SQE_OPCODE, (byte) IoUringAbi.OP_NOP);
            }

            @Override
            public Integer complete(int res) {
                throw new IllegalStateException("boom");
            }
        });
        StepVerifier.create(failing).expectErrorMessage("boom").verify(Duration.ofSeconds(5));
        StepVerifier.create(ring.nop()).expectNext(0).verifyComplete();
    }

    @Test
    void buffersFromTheArenaAreAliveUntilCompletion() {
        AtomicInteger seen = new AtomicInteger();
        Mono<Integer> op = ring.submit(new ControlRing.Operation<>() {
            MemorySegment buf;

            @Override
            public void prepare(MemorySegment sqe, Arena arena) {
                buf = arena.allocate(8);
                buf.set(ValueLayout.JAVA_LONG, 0, 42L);
                sqe.set(ValueLayout.JAVA_BYTE, IoUringAbi.SQE_OPCODE, (byte) IoUringAbi.OP_NOP);
            }

            @Override
            public Integer complete(int res) {
                seen.set((int) buf.get(ValueLayout.JAVA_LONG, 0));
                return res;
            }
        });
        StepVerifier.create(op).expectNext(0).verifyComplete();
        assertEquals(42, seen.get());
    }

    @Test
    void closeFailsLaterSubmissionsAndStopsTheReaper() throws InterruptedException {
        StepVerifier.create(ring.nop()).expectNext(0).verifyComplete();
        ring.close();
        assertTrue(ring.awaitReaperExit(5000), "the reaper thread ended");
        StepVerifier.create(ring.nop()).expectError(UbdClosedException.class).verify(Duration.ofSeconds(5));
    }

    @Test
    void completionsArriveOnTheRingThread() throws InterruptedException {
        CountDownLatch done = new CountDownLatch(1);
        String[] thread = new String[1];
        ring.nop().subscribe(r -> {
            thread[0] = Thread.currentThread().getName();
            done.countDown();
        });
        assertTrue(done.await(5, TimeUnit.SECONDS));
        assertEquals(ring.name(), thread[0]);
    }

    private static ControlRing.Operation<Integer> uringCmd(int fd, int cmdOp) {
        return new ControlRing.Operation<>() {
            @Override
            public void prepare(MemorySegment sqe, Arena arena) {
                sqe.set(ValueLayout.JAVA_BYTE, IoUringAbi.SQE_OPCODE, (byte) IoUringAbi.OP_URING_CMD);
                sqe.set(ValueLayout.JAVA_INT, IoUringAbi.SQE_FD, fd);
                sqe.set(ValueLayout.JAVA_INT, IoUringAbi.SQE_OFF, cmdOp);
            }

            @Override
            public Integer complete(int res) {
                return res;
            }
        };
    }
}

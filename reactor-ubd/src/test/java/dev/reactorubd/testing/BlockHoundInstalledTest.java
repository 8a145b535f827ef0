package dev.reactorubd.testing;

import java.time.Duration;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import reactor.blockhound.BlockingOperationError;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/** Proves that BlockHound is installed in this test JVM: a sleep on a non-blocking thread is caught. */
class BlockHoundInstalledTest {

    static void assertBlockingIsCaught() {
        StepVerifier.create(Mono.fromCallable(() -> {
                            Thread.sleep(1);
                            return 1;
                        })
                        .subscribeOn(Schedulers.parallel()))
                .expectError(BlockingOperationError.class)
                .verify(Duration.ofSeconds(10));
        Assertions.assertFalse(BlockingCallRecorder.callsOn("parallel-").isEmpty(), "the recorder saw it too");
    }

    @Test
    void sleepOnAParallelThreadIsCaught() {
        assertBlockingIsCaught();
    }

    /** The same inside the VM, where device tests run. */
    @DeviceTest
    static class InTheVm {
        @Test
        void sleepOnAParallelThreadIsCaught() {
            assertBlockingIsCaught();
        }
    }
}

package dev.reactorubd.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/** The queue's logic (demand, ordering, answers, errors, cancellation, ending), driven by the test kit. */
class UbdQueueTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private VirtualDevice dev;

    @AfterEach
    void close() {
        if (dev != null) {
            dev.close();
        }
    }

    private static ByteBuf bytes(String s) {
        return Unpooled.copiedBuffer(s, StandardCharsets.US_ASCII);
    }

    @Test
    void subscriberNeverGetsMoreThanItRequested() {
        dev = VirtualDevice.create(1, 8);
        List<Mono<Void>> writes = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            writes.add(dev.write(0, i * 512L, Unpooled.wrappedBuffer(new byte[512])));
            writes.get(i).subscribe();
        }
        StepVerifier.create(dev.queue(0).requests(), 0)
                .expectSubscription()
                .expectNoEvent(Duration.ofMillis(200))
                .thenRequest(1)
                .assertNext(r -> {
                    assertEquals(IoOp.WRITE, r.op());
                    assertEquals(0, r.offset());
                    r.complete();
                })
                .expectNoEvent(Duration.ofMillis(200))
                .thenRequest(2)
                .assertNext(r -> {
                    assertEquals(512, r.offset());
                    r.complete();
                })
                .assertNext(r -> {
                    assertEquals(1024, r.offset());
                    r.complete();
                })
                .thenCancel()
                .verify(WAIT);
    }

    @Test
    void requestsBeyondTheDepthWaitForAFreeTag() {
        dev = VirtualDevice.create(1, 2);
        for (int i = 0; i < 5; i++) {
            dev.flush(0).subscribe();
        }
        List<IoRequest> held = new CopyOnWriteArrayList<>();
        StepVerifier.create(dev.queue(0).requests())
                .recordWith(() -> held)
                .expectNextCount(2)
                .expectNoEvent(Duration.ofMillis(200))
                .then(() -> {
                    assertEquals(2, dev.inFlight(0));
                    assertEquals(3, dev.waiting(0));
                    held.get(0).complete();
                })
                .expectNextCount(1)
                .then(() -> held.forEach(r -> {
                    if (!r.isAnswered()) {
                        r.complete();
                    }
                }))
                .consumeNextWith(IoRequest::complete)
                .consumeNextWith(IoRequest::complete)
                .thenCancel()
                .verify(WAIT);
    }

    @Test
    void countersFollowBytesAndRequestsInFlight() {
        dev = VirtualDevice.create(1, 4);
        List<IoRequest> held = new CopyOnWriteArrayList<>();
        dev.queue(0).requests().subscribe(held::add);
        Mono<Void> write =
                dev.write(0, 0, Unpooled.wrappedBuffer(new byte[4096])).cache();
        write.subscribe();
        dev.flush(0).subscribe();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (held.size() < 2 && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertEquals(2, dev.queue(0).inFlightCount());
        assertEquals(0, dev.queue(0).bytesCount());
        held.forEach(IoRequest::complete);
        write.block(WAIT);
        while ((dev.queue(0).inFlightCount() > 0 || dev.queue(0).completedCount() < 2)
                && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertEquals(0, dev.queue(0).inFlightCount());
        assertEquals(4096, dev.queue(0).bytesCount(), "a WRITE counts its bytes, a FLUSH none");
        assertEquals(2, dev.queue(0).completedCount());
    }

    @Test
    void readDataGoesBackAndIsReleased() {
        dev = VirtualDevice.create(1, 4);
        ByteBuf[] given = new ByteBuf[1];
        dev.queue(0).requests().subscribe(r -> {
            given[0] = Unpooled.directBuffer(4).writeBytes(new byte[] {1, 2, 3, 4});
            r.complete(given[0]);
        });
        StepVerifier.create(dev.read(0, 4096, 4))
                .assertNext(buf -> {
                    byte[] b = new byte[4];
                    buf.readBytes(b);
                    assertEquals("[1, 2, 3, 4]", Arrays.toString(b));
                    buf.release();
                })
                .verifyComplete();
        assertEquals(0, given[0].refCnt(), "the backend's buffer was released after the copy");
    }

    @Test
    void heapOrCompositeReadDataIsGatheredIntoDirectMemory() {
        dev = VirtualDevice.create(1, 4);
        dev.queue(0).requests().subscribe(r -> r.complete(Unpooled.wrappedBuffer(bytes("ab"), bytes("cd"))));
        StepVerifier.create(dev.read(0, 0, 4))
                .assertNext(buf -> {
                    assertEquals("abcd", buf.toString(StandardCharsets.US_ASCII));
                    buf.release();
                })
                .verifyComplete();
    }

    @Test
    void writeDataArrivesBeforeTheRequestAndIsReleasedAfter() {
        dev = VirtualDevice.create(1, 4);
        ByteBuf[] seen = new ByteBuf[1];
        dev.queue(0).requests().subscribe(r -> {
            seen[0] = r.data();
            assertEquals("hello!!!", r.data().toString(StandardCharsets.US_ASCII));
            assertTrue(r.data().isDirect());
            r.complete();
        });
        StepVerifier.create(dev.write(0, 0, bytes("hello!!!"))).verifyComplete();
        assertEquals(0, seen[0].refCnt());
    }

    @Test
    void wrongLengthOrMissingReadDataFailsWithEio() {
        dev = VirtualDevice.create(1, 4);
        dev.queue(0).requests().subscribe(r -> {
            if (r.offset() == 0) {
                r.complete(Unpooled.directBuffer(2).writeZero(2));
            } else {
                r.complete();
            }
        });
        StepVerifier.create(dev.read(0, 0, 4))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EIO))
                .verify(WAIT);
        StepVerifier.create(dev.read(0, 512, 4))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EIO))
                .verify(WAIT);
    }

    @Test
    void typedFailureCarriesItsErrnoAndOthersGetEio() {
        dev = VirtualDevice.create(1, 4);
        dev.queue(0).requests().subscribe(r -> {
            if (r.offset() == 0) {
                r.fail(new UbdIoException(Errno.ENOSPC, "full"));
            } else if (r.offset() == 512) {
                r.fail(new IllegalStateException("bug"));
            } else {
                r.complete();
            }
        });
        StepVerifier.create(dev.write(0, 0, bytes("x")))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.ENOSPC))
                .verify(WAIT);
        StepVerifier.create(dev.write(0, 512, bytes("x")))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EIO))
                .verify(WAIT);
        StepVerifier.create(dev.write(0, 1024, bytes("x"))).verifyComplete();
        assertEquals(1, dev.queue(0).completedCount());
        assertEquals(2, dev.queue(0).failedCount());
    }

    @Test
    void answeringTwiceIsRefusedAndReleasesTheSecondBuffer() {
        dev = VirtualDevice.create(1, 4);
        IoRequest[] r = new IoRequest[1];
        dev.queue(0).requests().subscribe(x -> r[0] = x);
        Mono<ByteBuf> read = dev.read(0, 0, 1).cache();
        read.subscribe();
        StepVerifier.create(Mono.fromCallable(() -> r[0]).repeatWhenEmpty(f -> f.delayElements(Duration.ofMillis(10))))
                .expectNextCount(1)
                .verifyComplete();
        r[0].complete(Unpooled.directBuffer(1).writeByte(7));
        ByteBuf second = Unpooled.directBuffer(1).writeByte(8);
        assertThrows(IllegalStateException.class, () -> r[0].complete(second));
        assertEquals(0, second.refCnt());
        StepVerifier.create(read)
                .assertNext(b -> {
                    assertEquals(7, b.getByte(0));
                    b.release();
                })
                .verifyComplete();
    }

    @Test
    void answersFromAnyThreadAreCommittedOnTheLoop() {
        dev = VirtualDevice.create(2, 16);
        for (int q = 0; q < 2; q++) {
            dev.queue(q)
                    .requests()
                    .flatMap(r -> Mono.fromRunnable(r::complete).subscribeOn(Schedulers.parallel()))
                    .subscribe();
        }
        StepVerifier.create(Flux.range(0, 400)
                        .flatMap(i -> dev.write(i % 2, i * 512L, Unpooled.wrappedBuffer(new byte[512])))
                        .then())
                .verifyComplete();
        assertEquals(400, dev.queue(0).completedCount() + dev.queue(1).completedCount());
    }

    @Test
    void requestsOfAQueueComeInSubmissionOrder() {
        dev = VirtualDevice.create(1, 64);
        List<Long> offsets = new CopyOnWriteArrayList<>();
        dev.queue(0).requests().subscribe(r -> {
            offsets.add(r.offset());
            r.complete();
        });
        Mono<Void> all = Mono.empty();
        for (int i = 0; i < 50; i++) {
            all = all.then(dev.flush(0).then(dev.discard(0, i * 4096L, 4096)));
        }
        StepVerifier.create(all).verifyComplete();
        for (int i = 0; i < 50; i++) {
            assertEquals(i * 4096L, offsets.get(2 * i + 1));
        }
    }

    @Test
    void unknownOperationsAreAnsweredWithEopnotsupp() {
        dev = VirtualDevice.create(1, 4);
        List<IoRequest> seen = new CopyOnWriteArrayList<>();
        dev.queue(0).requests().subscribe(seen::add);
        StepVerifier.create(dev.submitRaw(0, 13 /* ZONE_APPEND */, 0, 0, 4096))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EOPNOTSUPP))
                .verify(WAIT);
        assertTrue(seen.isEmpty(), "the consumer never saw it");
    }

    @Test
    void cancelledSubscriberFailsWaitingAndLaterRequests() {
        dev = VirtualDevice.create(1, 4);
        dev.flush(0).subscribe(null, e -> {});
        StepVerifier.create(dev.queue(0).requests(), 0)
                .expectSubscription()
                .thenCancel()
                .verify(WAIT);
        StepVerifier.create(dev.flush(0))
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EIO))
                .verify(WAIT);
    }

    @Test
    void secondSubscriberIsRefused() {
        dev = VirtualDevice.create(1, 4);
        dev.queue(0).requests().subscribe();
        StepVerifier.create(dev.queue(0).requests())
                .expectError(IllegalStateException.class)
                .verify(WAIT);
    }

    @Test
    void stopLetsInFlightFinishFailsWaitingAndEndsTheFlux() {
        dev = VirtualDevice.create(1, 1);
        List<IoRequest> held = new CopyOnWriteArrayList<>();
        StepVerifier.Step<IoRequest> step =
                StepVerifier.create(dev.queue(0).requests()).recordWith(() -> held);
        Mono<Void> first = dev.flush(0).cache();
        first.subscribe();
        Mono<Void> second = dev.flush(0).cache();
        second.subscribe(null, e -> {});
        step.expectNextCount(1)
                .then(() -> {
                    dev.stop().subscribe();
                    held.get(0).complete();
                })
                .verifyComplete();
        StepVerifier.create(first).verifyComplete();
        StepVerifier.create(second)
                .expectErrorSatisfies(e -> assertErrno(e, Errno.EIO))
                .verify(WAIT);
        StepVerifier.create(dev.queue(0).onTerminated()).verifyComplete();
    }

    @Test
    void schedulerRunsInlineOnTheLoopAndHopsOtherwise() throws Exception {
        dev = VirtualDevice.create(1, 1);
        LoopScheduler s = (LoopScheduler) dev.queue(0).scheduler();
        String[] thread = new String[2];
        boolean[] inline = new boolean[1];
        s.schedule(() -> {
            thread[0] = Thread.currentThread().getName();
            s.schedule(() -> thread[1] = Thread.currentThread().getName());
            // Scheduled from the loop itself: it already ran, before schedule() returned.
            inline[0] = thread[1] != null;
        });
        dev.queue(0).loop().submit(() -> {}).get();
        assertTrue(inline[0], "a task scheduled on the loop from the loop runs at once");
        assertEquals(thread[0], thread[1]);
        assertNotEquals(Thread.currentThread().getName(), thread[0], "from another thread it hops to the loop");
    }

    static void assertErrno(Throwable e, int errno) {
        assertTrue(e instanceof UbdIoException, e.toString());
        assertEquals(errno, ((UbdIoException) e).errno(), e.getMessage());
    }
}

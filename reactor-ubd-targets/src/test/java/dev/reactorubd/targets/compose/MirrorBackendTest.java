package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.await;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.direct;
import static dev.reactorubd.targets.compose.TestData.errno;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;

/** The mirror through the test kit: two queues, MemoryBackend replicas, failures injected with {@link FaultyBackend}. */
class MirrorBackendTest {
    private static final int REGION = 64 * KIB;

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void writesLandOnEveryReplicaAndReadsComeBack() {
        MemoryBackend a = new MemoryBackend(4 * MIB);
        MemoryBackend b = new MemoryBackend(4 * MIB);
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            StepVerifier.create(Flux.range(0, 64)
                            .flatMap(i -> dev.write(i % 2, i * 16L * KIB + 512, buf(bytes(i, 12 * KIB))), 16)
                            .then())
                    .verifyComplete();
            for (int i = 0; i < 64; i++) {
                long at = i * 16L * KIB + 512;
                assertArrayEquals(bytes(i, 12 * KIB), direct(a, at, 12 * KIB), "replica 0, write " + i);
                assertArrayEquals(bytes(i, 12 * KIB), direct(b, at, 12 * KIB), "replica 1, write " + i);
                assertArrayEquals(bytes(i, 12 * KIB), read(dev, (i + 1) % 2, at, 12 * KIB), "read back " + i);
            }
            StepVerifier.create(dev.discard(0, 0, 16 * KIB).then(dev.writeZeroes(1, 16 * KIB, 16 * KIB)))
                    .verifyComplete();
            assertArrayEquals(new byte[32 * KIB], direct(a, 0, 32 * KIB));
            assertArrayEquals(new byte[32 * KIB], direct(b, 0, 32 * KIB));
            assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), mirror.states());
        }
    }

    @Test
    void aFailingReplicaIsReportedAndSkippedWhileIoGoesOn() {
        MemoryBackend a = new MemoryBackend(4 * MIB);
        FaultyBackend b = Backends.from(new MemoryBackend(4 * MIB)).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            StepVerifier.create(mirror.health().take(1))
                    .then(() -> {
                        b.failWrites(Errno.EIO);
                        // The write succeeds: replica 0 took it.
                        dev.write(0, 3 * REGION, buf(bytes(1, 4 * KIB))).block(WAIT);
                    })
                    .assertNext(e -> {
                        assertEquals(1, e.replica());
                        assertEquals(ReplicaState.IN_SYNC, e.from());
                        assertEquals(ReplicaState.FAILED, e.to());
                        assertTrue(e.reason().contains("EIO"), e.reason());
                    })
                    .verifyComplete();
            assertEquals(ReplicaState.FAILED, mirror.state(1));
            long seen = b.requests();
            StepVerifier.create(Flux.range(0, 20)
                            .flatMap(i -> dev.write(i % 2, i * 8L * KIB, buf(bytes(100 + i, 8 * KIB))), 8)
                            .then())
                    .verifyComplete();
            for (int i = 0; i < 20; i++) {
                assertArrayEquals(bytes(100 + i, 8 * KIB), read(dev, i % 2, i * 8L * KIB, 8 * KIB));
            }
            assertEquals(seen, b.requests(), "a failed replica gets no request");
            // Writes at 0..160 KiB (regions 0..2) and at region 3 were made without replica 1.
            assertEquals(4, mirror.dirtyRegions(1));
            assertEquals(0, mirror.dirtyRegions(0));
        }
    }

    /**
     * A write the server gives up on (its request timeout) while one replica has it and the other does not yet: the
     * replicas differ there, and reads taking them in turn used to return the new data and the old in turn. Now the
     * one that lagged is failed, its regions copied again from the other, and every read meanwhile gives one answer.
     */
    @Test
    void aWriteGivenUpBeforeEveryReplicaAnsweredLeavesOneContentNotTwo() {
        MemoryBackend a = new MemoryBackend(4 * MIB);
        FaultyBackend b = Backends.from(new MemoryBackend(4 * MIB)).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 1, 16, Duration.ofMillis(300), UbdMetrics.NONE)) {
            dev.write(0, 0, buf(bytes(1, 8 * KIB))).block(WAIT);
            b.delay(Duration.ofSeconds(2)); // replica 1 answers after the request timeout
            StepVerifier.create(dev.write(0, 0, buf(bytes(2, 8 * KIB))))
                    .expectErrorMatches(errno(Errno.ETIMEDOUT))
                    .verify(WAIT);
            b.heal();
            assertArrayEquals(bytes(2, 8 * KIB), direct(a, 0, 8 * KIB), "replica 0 took the given-up write");
            byte[] first = read(dev, 0, 0, 8 * KIB);
            for (int i = 0; i < 5; i++) {
                assertArrayEquals(first, read(dev, 0, 0, 8 * KIB), "read " + i + " gives what the first gave");
            }
            long end = System.nanoTime() + WAIT.toNanos();
            while (mirror.state(1) != ReplicaState.IN_SYNC && System.nanoTime() < end) {
                Thread.onSpinWait();
            }
            assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), mirror.states(), "resynced");
            assertArrayEquals(direct(a, 0, 8 * KIB), direct(b, 0, 8 * KIB), "the replicas agree again");
        }
    }

    /**
     * A resync's copy still on its way to the replica when the replica fails again and a second reinstate begins: the
     * second resync used to finish (its bitmap was empty: the first had cleared the region before copying it), the
     * replica served reads, and then the first copy landed with the region as it was before a later write. Now a resync
     * ends only when no copy to its replica is in flight, and the late copy's region is copied again.
     */
    @Test
    void aCopyOfASupersededResyncThatLandsLateIsCopiedAgainBeforeTheReplicaServesReads() {
        FaultyBackend faulty = Backends.from(new MemoryBackend(4 * MIB)).faults();
        HeldBackend a = new HeldBackend(faulty);
        MemoryBackend b = new MemoryBackend(4 * MIB);
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 1, 16)) {
            dev.write(0, 3 * REGION, buf(bytes(1, 8 * KIB))).block(WAIT);
            faulty.failWrites(Errno.EIO);
            dev.write(0, 3 * REGION, buf(bytes(2, 8 * KIB))).block(WAIT); // replica 0 fails, region 3 dirty
            faulty.heal();
            a.hold();
            Mono<Void> first = mirror.reinstate(0);
            first.subscribe(null, e -> {});
            await(() -> a.held() == 1, "the first resync's copy of region 3 is held on its way to replica 0");
            a.holdNoMore();

            faulty.failWrites(Errno.EIO);
            dev.write(0, 5 * REGION, buf(bytes(3, 8 * KIB))).block(WAIT); // replica 0 fails again, region 5 dirty
            faulty.heal();
            dev.write(0, 3 * REGION, buf(bytes(4, 8 * KIB))).block(WAIT); // skips replica 0: region 3 dirty again
            Mono<Void> second = mirror.reinstate(0);
            second.subscribe(null, e -> {});
            // The second resync copies regions 3 and 5; the first's copy (region 3 as it was before) is still held.
            await(() -> mirror.dirtyRegions(0) == 0, "the second resync copied what it found dirty");
            dev.write(0, 3 * REGION, buf(bytes(5, 8 * KIB))).block(WAIT);
            a.release(null); // the first copy lands: region 3 as it was when it was read, older than bytes 5
            await(
                    () -> mirror.state(0) == ReplicaState.IN_SYNC && a.inFlight() == 0,
                    "replica 0 back in sync, its copies done");
            assertArrayEquals(direct(b, 0, 8 * REGION), direct(faulty, 0, 8 * REGION), "the replicas agree");
            for (int i = 0; i < 4; i++) {
                assertArrayEquals(bytes(5, 8 * KIB), read(dev, 0, 3 * REGION, 8 * KIB), "read " + i + " of region 3");
            }
        }
    }

    @Test
    void readsFallOverToTheHealthyReplica() {
        FaultyBackend a = Backends.from(new MemoryBackend(4 * MIB)).faults();
        MemoryBackend b = new MemoryBackend(4 * MIB);
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            dev.write(0, 0, buf(bytes(7, 256 * KIB))).block(WAIT);
            a.failReads(Errno.EIO);
            for (int i = 0; i < 8; i++) {
                // Round-robin sends one of the first two reads to replica 0; it fails there and is served by 1.
                assertArrayEquals(
                        Arrays.copyOfRange(bytes(7, 256 * KIB), i * 32 * KIB, (i + 1) * 32 * KIB),
                        read(dev, i % 2, i * 32L * KIB, 32 * KIB));
            }
            assertEquals(ReplicaState.FAILED, mirror.state(0));
            assertEquals(ReplicaState.IN_SYNC, mirror.state(1));
            assertEquals(1, a.injected(), "after its failure replica 0 got no more reads");
            assertEquals(0, mirror.dirtyRegions(0), "a failed read makes nothing dirty");
        }
    }

    @Test
    void reinstateCopiesExactlyTheDirtyRegionsAndTheReplicasAgree() {
        MemoryBackend a = new MemoryBackend(4 * MIB);
        TestData.Recording rb = new TestData.Recording(new MemoryBackend(4 * MIB));
        FaultyBackend b = Backends.from(rb).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            dev.write(0, 0, buf(bytes(1, 4 * MIB))).block(WAIT);
            b.failWrites(Errno.EIO);
            // Regions 3 (failed on replica 1), 5 (twice), 6 and 7 (one write across both), and 40.
            dev.write(0, 3 * REGION + 4 * KIB, buf(bytes(2, 4 * KIB))).block(WAIT);
            dev.write(1, 5 * REGION, buf(bytes(3, 8 * KIB))).block(WAIT);
            dev.write(0, 5 * REGION + 32 * KIB, buf(bytes(4, 8 * KIB))).block(WAIT);
            dev.write(1, 7 * REGION - 4 * KIB, buf(bytes(5, 8 * KIB))).block(WAIT);
            dev.discard(0, 40 * REGION, 4 * KIB).block(WAIT);
            assertEquals(ReplicaState.FAILED, mirror.state(1));
            assertEquals(5, mirror.dirtyRegions(1));
            b.heal();
            rb.ops.clear();

            StepVerifier.create(mirror.health().take(2))
                    .then(() -> StepVerifier.create(mirror.reinstate(1))
                            .expectComplete()
                            .verify(WAIT))
                    .assertNext(e -> assertEquals(
                            List.of(1, ReplicaState.FAILED, ReplicaState.RESYNCING),
                            List.of(e.replica(), e.from(), e.to())))
                    .assertNext(e -> assertEquals(
                            List.of(1, ReplicaState.RESYNCING, ReplicaState.IN_SYNC),
                            List.of(e.replica(), e.from(), e.to())))
                    .verifyComplete();

            Set<Long> copied = rb.ops.stream()
                    .map(op -> {
                        assertEquals("write", op.op());
                        assertEquals(REGION, op.length(), "whole regions are copied");
                        return op.offset() / REGION;
                    })
                    .collect(Collectors.toCollection(TreeSet::new));
            assertEquals(Set.of(3L, 5L, 6L, 7L, 40L), copied);
            assertEquals(5, rb.ops.size(), "each dirty region copied once");
            assertEquals(5, mirror.copiedRegions());
            assertEquals(0, mirror.dirtyRegions(1));
            assertArrayEquals(direct(a, 0, 4 * MIB), direct(rb, 0, 4 * MIB), "the replicas hold the same bytes");
            // In sync again: it takes writes and serves reads.
            dev.write(0, 0, buf(bytes(9, 4 * KIB))).block(WAIT);
            assertArrayEquals(bytes(9, 4 * KIB), direct(rb, 0, 4 * KIB));
        }
    }

    @Test
    void resyncWhileWritesContinueEndsWithIdenticalReplicas() {
        int size = 8 * MIB;
        MemoryBackend a = new MemoryBackend(size);
        MemoryBackend bMem = new MemoryBackend(size);
        FaultyBackend b = Backends.from(bMem).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            b.failAll(Errno.EIO);
            // Every region written while replica 1 is out.
            StepVerifier.create(Flux.range(0, size / REGION)
                            .flatMap(i -> dev.write(i % 2, (long) i * REGION, buf(bytes(i, REGION))), 8)
                            .then())
                    .verifyComplete();
            assertEquals(ReplicaState.FAILED, mirror.state(1));
            assertEquals(size / REGION, mirror.dirtyRegions(1));
            // Slow replica 1 down so that the copy and the writes below overlap.
            b.heal().delay(Duration.ofMillis(1));
            Random random = new Random(42);
            List<Long> offsets = random.longs(600, 0, size / (4 * KIB))
                    .map(x -> x * 4 * KIB)
                    .boxed()
                    .toList();
            Mono<Void> writes = Flux.fromIterable(offsets)
                    .index()
                    .flatMap(t -> dev.write((int) (t.getT1() % 2), t.getT2(), buf(bytes(1000 + t.getT1(), 4 * KIB))), 8)
                    .then();
            StepVerifier.create(Mono.when(mirror.reinstate(1), writes))
                    .expectComplete()
                    .verify(WAIT);
            assertEquals(ReplicaState.IN_SYNC, mirror.state(1));
            assertEquals(0, mirror.dirtyRegions(1));
            assertTrue(mirror.copiedRegions() >= size / REGION, "every dirty region was copied");
            b.heal();
            assertArrayEquals(direct(a, 0, size), direct(bMem, 0, size), "the replicas hold the same bytes");
            // And the device holds the last write of each offset.
            for (int i = offsets.size() - 1; i >= offsets.size() - 20; i--) {
                long at = offsets.get(i);
                if (offsets.subList(i + 1, offsets.size()).contains(at)) {
                    continue;
                }
                assertArrayEquals(bytes(1000 + i, 4 * KIB), read(dev, i % 2, at, 4 * KIB));
            }
        }
    }

    @Test
    void aReplaceUnderWritesSwapsTheReplicaOnEveryQueueAndTheReplacementEndsIdentical() {
        int size = 4 * MIB;
        MemoryBackend a = new MemoryBackend(size);
        HeldBackend old =
                new HeldBackend(Backends.from(new MemoryBackend(size)).faults().delay(Duration.ofMillis(1)));
        MemoryBackend cMem = new MemoryBackend(size);
        FaultyBackend c = Backends.from(cMem).faults().delay(Duration.ofMillis(1));
        MirrorBackend mirror = Backends.mirror(a, old);
        List<HealthEvent> events = new CopyOnWriteArrayList<>();
        mirror.health().subscribe(events::add);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16, Duration.ofSeconds(30), UbdMetrics.NONE)) {
            StepVerifier.create(Flux.range(0, size / REGION)
                            .flatMap(i -> dev.write(i % 2, (long) i * REGION, buf(bytes(i, REGION))), 8)
                            .then())
                    .verifyComplete();
            // Distinct offsets: two writes of one block in flight at once have no order, on replicas as on disks.
            List<Long> blocks = new ArrayList<>();
            for (long x = 0; x < size / (4 * KIB); x++) {
                blocks.add(x * 4 * KIB);
            }
            Collections.shuffle(blocks, new Random(7));
            List<Long> offsets = blocks.subList(0, 800);
            Sinks.Empty<Void> started = Sinks.empty();
            AtomicInteger done = new AtomicInteger();
            Mono<Void> writes = Flux.fromIterable(offsets)
                    .index()
                    .flatMap(
                            t -> dev.write((int) (t.getT1() % 2), t.getT2(), buf(bytes(1000 + t.getT1(), 4 * KIB)))
                                    .doOnSuccess(v -> {
                                        if (done.incrementAndGet() == 100) {
                                            started.tryEmitEmpty();
                                        }
                                    }),
                            8)
                    .then();
            // The replace lands in the middle of the writes, with some of them in flight on the old replica.
            Mono<Void> replace =
                    started.asMono().then(mirror.replace(1, c)).then(Mono.defer(() -> mirror.reinstate(1)));
            StepVerifier.create(Mono.when(writes, replace)).expectComplete().verify(WAIT);
            assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), mirror.states());
            assertEquals(c, mirror.replicas().get(1), "the replacement is in slot 1");
            assertArrayEquals(direct(a, 0, size), direct(cMem, 0, size), "the replacement holds replica 0's bytes");
            for (int i = 0; i < offsets.size(); i++) {
                assertArrayEquals(bytes(1000 + i, 4 * KIB), read(dev, i % 2, offsets.get(i), 4 * KIB));
            }
            await(old::isClosed, "the old replica closed");
            assertEquals(0, old.inFlightAtClose(), "closed only once nothing sent to it was left");
            assertEquals(0, old.startedAfterClose(), "nothing reached the old replica after it was closed");
            assertTrue(
                    events.stream()
                            .anyMatch(e -> e.replica() == 1
                                    && e.to() == ReplicaState.FAILED
                                    && e.reason().contains("replaced by")),
                    events.toString());
        }
    }

    @Test
    void aReplacedReplicaIsClosedOnlyOnceItsRequestsEndAndTheirLateFailureIsNotItsReplacements() {
        int size = 2 * MIB;
        MemoryBackend a = new MemoryBackend(size);
        HeldBackend old = new HeldBackend(new MemoryBackend(size));
        MemoryBackend cMem = new MemoryBackend(size);
        MirrorBackend mirror = Backends.mirror(a, old);
        List<HealthEvent> events = new CopyOnWriteArrayList<>();
        mirror.health().subscribe(events::add);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16, Duration.ofSeconds(30), UbdMetrics.NONE)) {
            old.hold();
            List<Mono<Void>> held = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                held.add(dev.write(i % 2, (long) i * REGION, buf(bytes(50 + i, 4 * KIB)))
                        .cache());
                held.get(i).subscribe(null, e -> {});
            }
            await(() -> old.held() == 8, "8 writes held by the old replica");
            StepVerifier.create(mirror.replace(1, cMem)).expectComplete().verify(WAIT);
            assertEquals(false, old.isClosed(), "8 requests are still in flight on it");
            old.release(Support.ioError(Errno.EIO, "the old disk died late"));
            // Replica 0 took them: the writes succeed; their failure on the old replica is no one's now.
            StepVerifier.create(Mono.when(held)).expectComplete().verify(WAIT);
            StepVerifier.create(mirror.reinstate(1)).expectComplete().verify(WAIT);
            await(old::isClosed, "the old replica closed");
            assertEquals(0, old.inFlightAtClose());
            int replacedAt = -1;
            for (int i = 0; i < events.size(); i++) {
                if (events.get(i).reason().contains("replaced by")) {
                    replacedAt = i;
                }
            }
            assertTrue(replacedAt >= 0, events.toString());
            assertEquals(
                    List.of(ReplicaState.RESYNCING, ReplicaState.IN_SYNC),
                    events.subList(replacedAt + 1, events.size()).stream()
                            .map(HealthEvent::to)
                            .toList(),
                    "the replacement never failed: " + events);
            for (int i = 0; i < 8; i++) {
                assertArrayEquals(bytes(50 + i, 4 * KIB), direct(cMem, (long) i * REGION, 4 * KIB));
            }
        }
    }

    @Test
    void aReplaceThatWouldLoseDataOrCannotHoldTheMirrorIsRefusedAndChangesNothing() {
        MemoryBackend a = new MemoryBackend(4 * MIB);
        FaultyBackend b = Backends.from(new MemoryBackend(4 * MIB)).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 1, 8, Duration.ofSeconds(30), UbdMetrics.NONE)) {
            StepVerifier.create(mirror.replace(1, new MemoryBackend(2 * MIB)))
                    .expectErrorMatches(e -> e instanceof MirrorReplaceException r
                            && r.reason() == MirrorReplaceException.Reason.UNSUITABLE
                            && e.getMessage().contains("larger"))
                    .verify(WAIT);
            StepVerifier.create(mirror.replace(1, a))
                    .expectErrorMatches(e -> e instanceof MirrorReplaceException r
                            && r.reason() == MirrorReplaceException.Reason.UNSUITABLE
                            && e.getMessage().contains("replica 0"))
                    .verify(WAIT);
            b.failAll(Errno.EIO);
            dev.write(0, 0, buf(bytes(1, 4 * KIB))).block(WAIT);
            assertEquals(ReplicaState.FAILED, mirror.state(1));
            // Replica 0 is the only one holding the data: replacing it would leave nothing to copy from.
            StepVerifier.create(mirror.replace(0, new MemoryBackend(4 * MIB)))
                    .expectErrorMatches(e -> e instanceof MirrorReplaceException r
                            && r.reason() == MirrorReplaceException.Reason.NOT_NOW
                            && e.getMessage().contains("in sync"))
                    .verify(WAIT);
            assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.FAILED), mirror.states());
            assertEquals(a, mirror.replicas().get(0));
            assertArrayEquals(bytes(1, 4 * KIB), read(dev, 0, 0, 4 * KIB));
        }
    }

    @Test
    void aFailedFlushMakesTheWholeReplicaDirty() {
        MemoryBackend a = new MemoryBackend(1 * MIB);
        FaultyBackend b = Backends.from(new MemoryBackend(1 * MIB)).faults();
        // A replica with a volatile cache, so that FLUSH reaches it.
        FlushingBackend fb = new FlushingBackend(b);
        MirrorBackend mirror = Backends.mirror(a, fb);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            b.failWrites(Errno.EIO);
            StepVerifier.create(dev.flush(0)).verifyComplete();
            assertEquals(ReplicaState.FAILED, mirror.state(1));
            b.heal();
            StepVerifier.create(mirror.reinstate(1)).expectComplete().verify(WAIT);
            assertEquals(MIB / REGION, mirror.copiedRegions(), "everything was copied");
            assertEquals(ReplicaState.IN_SYNC, mirror.state(1));
        }
    }

    @Test
    void everyReplicaFailedFailsRequestsWithEio() {
        FaultyBackend a = Backends.from(new MemoryBackend(1 * MIB)).faults();
        FaultyBackend b = Backends.from(new MemoryBackend(1 * MIB)).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 2, 16)) {
            a.failAll(Errno.ENOSPC);
            b.failAll(Errno.EROFS);
            StepVerifier.create(dev.write(0, 0, buf(bytes(1, 4 * KIB))))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            assertEquals(List.of(ReplicaState.FAILED, ReplicaState.FAILED), mirror.states());
            long seen = a.requests() + b.requests();
            // A write that reaches no replica fails; so does a read.
            StepVerifier.create(dev.write(1, 0, buf(bytes(1, 4 * KIB))))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            StepVerifier.create(dev.flush(1))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            assertEquals(seen, a.requests() + b.requests(), "nothing reached the failed replicas");
            // Reinstating needs an in-sync replica to copy from.
            a.heal();
            b.heal();
            StepVerifier.create(mirror.reinstate(1))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            assertEquals(ReplicaState.FAILED, mirror.state(1));
        }
    }

    @Test
    void aReadFailingEverywhereFailsWithEio() {
        FaultyBackend a = Backends.from(new MemoryBackend(1 * MIB)).faults();
        FaultyBackend b = Backends.from(new MemoryBackend(1 * MIB)).faults();
        MirrorBackend mirror = Backends.mirror(a, b);
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 1, 4)) {
            a.failReads(Errno.EIO);
            b.failReads(Errno.ENODATA);
            StepVerifier.create(dev.read(0, 0, 4 * KIB))
                    .expectErrorMatches(errno(Errno.EIO))
                    .verify(WAIT);
            assertEquals(List.of(ReplicaState.FAILED, ReplicaState.FAILED), mirror.states());
            assertEquals(2, a.injected() + b.injected(), "each replica tried once");
        }
    }

    @Test
    void rangesBeyondTheSmallestReplicaFailWithEinval() {
        MirrorBackend mirror = Backends.mirror(new MemoryBackend(2 * MIB), new MemoryBackend(1 * MIB));
        assertEquals(MIB, mirror.size());
        try (VirtualDevice dev = VirtualDevice.serve(mirror, 1, 4)) {
            StepVerifier.create(dev.read(0, MIB - 4 * KIB, 8 * KIB))
                    .expectErrorMatches(errno(Errno.EINVAL))
                    .verify(WAIT);
            StepVerifier.create(dev.write(0, MIB, buf(bytes(1, 512))))
                    .expectErrorMatches(errno(Errno.EINVAL))
                    .verify(WAIT);
            assertEquals(
                    List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC),
                    mirror.states(),
                    "a bad request is not a replica's failure");
        }
    }

    @Test
    void replicasMustKnowTheirSize() {
        Assertions.assertThrows(
                IllegalArgumentException.class, () -> Backends.mirror(new MemoryBackend(MIB), TestData.unknownSize()));
    }

    /** Says it has a volatile cache (FLUSH) and passes everything on. */
    static final class FlushingBackend extends TestData.Recording {
        FlushingBackend(BlockBackend inner) {
            super(inner);
        }

        @Override
        public Set<Capability> capabilities() {
            return EnumSet.of(Capability.FLUSH, Capability.DISCARD, Capability.WRITE_ZEROES);
        }
    }
}

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
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** RAID-0 through the test kit, with the parts checked directly. */
class StripeBackendTest {
    private static final int CHUNK = 64 * KIB;

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void theLayoutSplitsAtChunkEdges() {
        Layout stripe = new Layout.Stripe(CHUNK, 3);
        assertEquals(List.of(new Layout.Piece(1, 4 * KIB, 0, 60 * KIB)), stripe.split(CHUNK + 4 * KIB, 60 * KIB));
        assertEquals(
                List.of(
                        new Layout.Piece(0, CHUNK - 512, 0, 512),
                        new Layout.Piece(1, 0, 512, CHUNK),
                        new Layout.Piece(2, 0, 512 + CHUNK, CHUNK),
                        new Layout.Piece(0, CHUNK, 512 + 2 * CHUNK, 1024)),
                stripe.split(CHUNK - 512, 512 + 2 * CHUNK + 1024));
    }

    @Test
    void dataAtChunkEdgesLandsInTheRightPartAtTheRightOffset() {
        MemoryBackend[] parts = {new MemoryBackend(MIB), new MemoryBackend(MIB), new MemoryBackend(MIB)};
        StripeBackend stripe = Backends.stripe(CHUNK, parts);
        assertEquals(3 * MIB, stripe.size());
        try (VirtualDevice dev = VirtualDevice.serve(stripe, 2, 16)) {
            // 4 KiB before the end of chunk 0 to 4 KiB into chunk 1.
            byte[] edge = bytes(1, 8 * KIB);
            StepVerifier.create(dev.write(0, CHUNK - 4 * KIB, buf(edge))).verifyComplete();
            assertArrayEquals(Arrays.copyOfRange(edge, 0, 4 * KIB), direct(parts[0], CHUNK - 4 * KIB, 4 * KIB));
            assertArrayEquals(Arrays.copyOfRange(edge, 4 * KIB, 8 * KIB), direct(parts[1], 0, 4 * KIB));
            assertArrayEquals(edge, read(dev, 1, CHUNK - 4 * KIB, 8 * KIB), "a split read reassembles");

            // Across seven chunks, from 100 KiB: check every byte's part and offset with the RAID-0 formula.
            byte[] wide = bytes(2, 400 * KIB);
            long start = 100 * KIB + 512 * 3;
            StepVerifier.create(dev.write(1, start, buf(wide))).verifyComplete();
            for (int i = 0; i < wide.length; i += 512) {
                long pos = start + i;
                long chunk = pos / CHUNK;
                int part = (int) (chunk % 3);
                long at = chunk / 3 * CHUNK + pos % CHUNK;
                assertEquals(wide[i], direct(parts[part], at, 512)[0], "byte " + i);
            }
            assertArrayEquals(wide, read(dev, 0, start, wide.length));
            byte[] inOne = read(dev, 0, 2 * CHUNK + 8 * KIB, 16 * KIB);
            assertArrayEquals(Arrays.copyOfRange(direct(parts[2], 8 * KIB, 16 * KIB), 0, 16 * KIB), inOne);
        }
    }

    @Test
    void manyConcurrentSplitRequestsAgree() {
        StripeBackend stripe = Backends.stripe(4 * KIB, new MemoryBackend(MIB), new MemoryBackend(MIB));
        try (VirtualDevice dev = VirtualDevice.serve(stripe, 2, 16)) {
            StepVerifier.create(Flux.range(0, 64)
                            .flatMap(i -> dev.write(i % 2, i * 24L * KIB, buf(bytes(i, 24 * KIB))), 16)
                            .then())
                    .verifyComplete();
            StepVerifier.create(Flux.range(0, 64)
                            .flatMap(
                                    i -> dev.read((i + 1) % 2, i * 24L * KIB, 24 * KIB)
                                            .map(b -> {
                                                try {
                                                    return Arrays.equals(ByteBufUtil.getBytes(b), bytes(i, 24 * KIB));
                                                } finally {
                                                    b.release();
                                                }
                                            }),
                                    16)
                            .all(ok -> ok))
                    .expectNext(true)
                    .verifyComplete();
        }
    }

    @Test
    void discardAndWriteZeroesAreSplitToo() {
        MemoryBackend[] parts = {new MemoryBackend(MIB), new MemoryBackend(MIB)};
        try (VirtualDevice dev = VirtualDevice.serve(Backends.stripe(CHUNK, parts), 1, 8)) {
            byte[] ones = new byte[4 * CHUNK];
            Arrays.fill(ones, (byte) 1);
            dev.write(0, 0, buf(ones)).block(WAIT);
            StepVerifier.create(dev.discard(0, CHUNK / 2, CHUNK * 2)).verifyComplete();
            // Device [32K, 160K): part 0 [32K, 64K) and [64K, 96K), part 1 [0, 64K).
            assertArrayEquals(new byte[CHUNK / 2], direct(parts[0], CHUNK / 2, CHUNK / 2));
            assertArrayEquals(new byte[CHUNK], direct(parts[1], 0, CHUNK));
            assertArrayEquals(new byte[CHUNK / 2], direct(parts[0], CHUNK, CHUNK / 2));
            assertEquals(1, direct(parts[0], CHUNK + CHUNK / 2, 1)[0]);
            StepVerifier.create(dev.writeZeroes(0, 3 * CHUNK, CHUNK)).verifyComplete();
            assertArrayEquals(new byte[CHUNK], direct(parts[1], CHUNK, CHUNK));
        }
    }

    @Test
    void aFailingPartFailsTheRequestWithItsErrnoAndTheOtherPiecesAreReleased() {
        ByteBuf[] handedOut = new ByteBuf[1];
        BlockBackend gives = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                handedOut[0] = Unpooled.directBuffer(length).writeZero(length);
                return Mono.just(handedOut[0]);
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.empty();
            }

            @Override
            public long size() {
                return MIB;
            }
        };
        FaultyBackend fails = Backends.from(new MemoryBackend(MIB)).faults();
        try (VirtualDevice dev = VirtualDevice.serve(Backends.stripe(CHUNK, gives, fails), 2, 8)) {
            fails.failAll(Errno.ENOSPC);
            StepVerifier.create(dev.read(0, CHUNK - 4 * KIB, 8 * KIB))
                    .expectErrorMatches(errno(Errno.ENOSPC))
                    .verify(WAIT);
            assertEquals(0, handedOut[0].refCnt(), "the piece that arrived was released");
            StepVerifier.create(dev.write(1, CHUNK - 4 * KIB, buf(bytes(1, 8 * KIB))))
                    .expectErrorMatches(errno(Errno.ENOSPC))
                    .verify(WAIT);
            // A request within the healthy part is not affected.
            byte[] zeros = read(dev, 0, 0, 4 * KIB);
            assertArrayEquals(new byte[4 * KIB], zeros);
        }
    }

    @Test
    void flushReachesThePartsWithAVolatileCache() {
        TestData.Recording cached = new MirrorBackendTest.FlushingBackend(new MemoryBackend(MIB));
        TestData.Recording plain = new TestData.Recording(new MemoryBackend(MIB));
        StripeBackend stripe = Backends.stripe(CHUNK, cached, plain);
        assertTrue(stripe.capabilities().contains(Capability.FLUSH), "one part's cache makes the stripe's");
        assertEquals(Set.of(Capability.FLUSH, Capability.DISCARD, Capability.WRITE_ZEROES), stripe.capabilities());
        try (VirtualDevice dev = VirtualDevice.serve(stripe, 1, 4)) {
            StepVerifier.create(dev.flush(0)).verifyComplete();
        }
        assertEquals(List.of(new TestData.Op("flush", 0, 0)), cached.ops);
        assertEquals(List.of(), plain.ops);
    }

    @Test
    void sizeIsPartsTimesTheSmallestRoundedToTheChunk() {
        assertEquals(
                2 * MIB,
                Backends.stripe(CHUNK, new MemoryBackend(MIB + 100 * KIB), new MemoryBackend(MIB + 60 * KIB))
                        .size());
        assertEquals(
                4 * 192 * KIB,
                Backends.stripe(
                                CHUNK,
                                new MemoryBackend(200 * KIB),
                                new MemoryBackend(MIB),
                                new MemoryBackend(MIB),
                                new MemoryBackend(MIB))
                        .size());
        assertEquals(
                BlockBackend.UNKNOWN_SIZE,
                Backends.stripe(CHUNK, TestData.unknownSize(), new MemoryBackend(MIB))
                        .size());
        assertThrows(IllegalArgumentException.class, () -> Backends.stripe(1000, new MemoryBackend(MIB)));
        try (VirtualDevice dev =
                VirtualDevice.serve(Backends.stripe(CHUNK, new MemoryBackend(MIB), new MemoryBackend(MIB)), 1, 4)) {
            StepVerifier.create(dev.read(0, 2 * MIB - 4 * KIB, 8 * KIB))
                    .expectErrorMatches(errno(Errno.EINVAL))
                    .verify(WAIT);
        }
    }
}

package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/** The targets through the test kit's virtual device: the same queue and bridge code the kernel path uses. */
class TargetsTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    private static byte[] read(VirtualDevice dev, int q, long offset, int length) {
        ByteBuf buf = dev.read(q, offset, length).block(WAIT);
        try {
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    @Test
    void memoryKeepsWhatWasWrittenAcrossQueuesAndPageEdges() {
        MemoryBackend mem = new MemoryBackend(1 << 20);
        try (VirtualDevice dev = VirtualDevice.serve(mem, 2, 8)) {
            byte[] data = new byte[10_000];
            new Random(1).nextBytes(data);
            // 512-aligned but not page-aligned: bytes 1536..11535 touch pages 0, 1 and 2.
            StepVerifier.create(dev.write(0, 1536, Unpooled.wrappedBuffer(data)))
                    .verifyComplete();
            assertArrayEquals(data, read(dev, 1, 1536, data.length));
            assertEquals(3, mem.allocatedPages());
            byte[] hole = read(dev, 0, 64 * 1024, 8192);
            assertArrayEquals(new byte[8192], hole);
            assertEquals(3, mem.allocatedPages(), "reading a hole allocates nothing");
        }
    }

    @Test
    void discardFreesPagesAndReadsZeros() {
        MemoryBackend mem = new MemoryBackend(1 << 20);
        try (VirtualDevice dev = VirtualDevice.serve(mem, 1, 8)) {
            byte[] ones = new byte[16384];
            Arrays.fill(ones, (byte) 1);
            dev.write(0, 0, Unpooled.wrappedBuffer(ones)).block(WAIT);
            assertEquals(4, mem.allocatedPages());
            dev.discard(0, 4096, 8192).block(WAIT);
            assertEquals(2, mem.allocatedPages());
            byte[] back = read(dev, 0, 0, 16384);
            for (int i = 0; i < 16384; i++) {
                assertEquals(i >= 4096 && i < 12288 ? 0 : 1, back[i], "byte " + i);
            }
            dev.writeZeroes(0, 512, 512).block(WAIT);
            assertEquals(0, read(dev, 0, 512, 1)[0]);
            assertEquals(1, read(dev, 0, 0, 1)[0]);
        }
    }

    @Test
    void memoryRefusesRangesBeyondItsCapacity() {
        try (VirtualDevice dev = VirtualDevice.serve(new MemoryBackend(8192), 1, 4)) {
            StepVerifier.create(dev.read(0, 8192, 512)).expectError().verify(WAIT);
        }
    }

    /** Found by VirtualDeviceProperties: offset + length overflowed, and a write at Long.MAX_VALUE "succeeded". */
    @Test
    void rangesWhoseEndOverflowsAreRefusedWithEinval(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.img");
        Files.write(img, new byte[8192]);
        FileBackend file = FileBackend.open(img);
        MemoryBackend mem = new MemoryBackend(8192);
        try {
            for (BlockBackend b :
                    List.of(mem, file, Backends.concat(new MemoryBackend(4096), new MemoryBackend(4096)))) {
                for (long offset : new long[] {Long.MAX_VALUE, Long.MAX_VALUE - 511}) {
                    StepVerifier.create(b.write(offset, Unpooled.wrappedBuffer(new byte[512]), false))
                            .expectErrorSatisfies(
                                    e -> assertEquals(Errno.EINVAL, ((UbdIoException) e).errno(), b + ": " + e))
                            .verify(WAIT);
                    StepVerifier.create(b.read(offset, 512, PooledByteBufAllocator.DEFAULT))
                            .expectError(UbdIoException.class)
                            .verify(WAIT);
                    StepVerifier.create(b.discard(offset, 512))
                            .expectError(UbdIoException.class)
                            .verify(WAIT);
                }
            }
        } finally {
            file.close().block(WAIT);
        }
    }

    @Test
    void manyConcurrentWritesThenReadsAgree() {
        MemoryBackend mem = new MemoryBackend(4 << 20);
        try (VirtualDevice dev = VirtualDevice.serve(mem, 2, 16)) {
            StepVerifier.create(Flux.range(0, 256)
                            .flatMap(i -> dev.write(i % 2, i * 4096L, Unpooled.wrappedBuffer(block(i))), 64)
                            .then())
                    .verifyComplete();
            StepVerifier.create(Flux.range(0, 256)
                            .flatMap(
                                    i -> dev.read(i % 2, i * 4096L, 4096).map(b -> {
                                        try {
                                            return Arrays.equals(ByteBufUtil.getBytes(b), block(i));
                                        } finally {
                                            b.release();
                                        }
                                    }),
                                    64)
                            .all(ok -> ok))
                    .expectNext(true)
                    .verifyComplete();
        }
    }

    private static byte[] block(int i) {
        byte[] b = new byte[4096];
        new Random(i).nextBytes(b);
        return b;
    }

    @Test
    void nullReadsZerosAndTakesEverything() {
        try (VirtualDevice dev = VirtualDevice.serve(new NullBackend(), 1, 4)) {
            dev.write(0, 0, Unpooled.wrappedBuffer(new byte[] {1, 2, 3})).block(WAIT);
            assertArrayEquals(new byte[4096], read(dev, 0, 0, 4096));
            byte[] big = read(dev, 0, 0, 2 << 20);
            assertEquals(2 << 20, big.length);
            assertTrue(IntStream.range(0, big.length).allMatch(i -> big[i] == 0));
            StepVerifier.create(dev.flush(0).then(dev.discard(0, 0, 4096)).then(dev.writeZeroes(0, 0, 4096)))
                    .verifyComplete();
        }
    }
}

package dev.reactorubd.targets.file;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.LeakDetection;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/**
 * The file target through the test kit, on this host's io_uring: its IO really goes through io_uring to a real file,
 * and the file is then read back with plain Java IO.
 */
class FileBackendTest {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private Path file;

    @BeforeEach
    void newFile() {
        file = dir.resolve("store.img");
    }

    private final List<FileBackend> opened = new ArrayList<>();

    private FileBackend open(FileBackend.Options options) {
        FileBackend b = FileBackend.open(file, options);
        opened.add(b);
        return b;
    }

    @AfterEach
    void closeBackends() {
        opened.forEach(b -> b.close().block(WAIT));
    }

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static byte[] read(VirtualDevice dev, int q, long offset, int length) {
        ByteBuf buf = dev.read(q, offset, length).block(WAIT);
        try {
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    private byte[] fileBytes(long offset, int length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            byte[] b = new byte[length];
            f.seek(offset);
            f.readFully(b);
            return b;
        }
    }

    private long allocatedBlocks() {
        try {
            Process p = new ProcessBuilder("stat", "-c", "%b", file.toString()).start();
            String out = new String(p.getInputStream().readAllBytes()).trim();
            p.waitFor();
            return Long.parseLong(out);
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    private void mixedWritesLandInTheFile(FileBackend.Options options) throws IOException {
        FileBackend store = open(options.createSize(8L * MIB));
        try (VirtualDevice dev = VirtualDevice.serve(store, 2, 32)) {
            assertTrue(dev.onIoUring(), "this host has io_uring, so the test kit runs on it");
            assertEquals(8L * MIB, store.size());
            Random rnd = new Random(7);
            int[] sizes = {4096, 8192, 65536, 131072, 12288};
            long[] offsets = new long[40];
            byte[][] data = new byte[40][];
            for (int i = 0; i < 40; i++) {
                int n = sizes[i % sizes.length];
                offsets[i] = (long) rnd.nextInt((8 * MIB - n) / 4096) * 4096;
                data[i] = random(n, i);
            }
            // Overlapping writes race, as on a disk: write them one batch per queue with distinct ranges.
            Flux.range(0, 40)
                    .flatMap(i -> dev.write(i % 2, offsets[i], Unpooled.wrappedBuffer(data[i])), 1)
                    .then()
                    .block(WAIT);
            dev.flush(0).block(WAIT);
            // The last write of each range wins; check the final image both through the device and in the file.
            byte[] image = new byte[8 * MIB];
            for (int i = 0; i < 40; i++) {
                System.arraycopy(data[i], 0, image, (int) offsets[i], data[i].length);
            }
            for (int i = 0; i < 40; i++) {
                byte[] expected = Arrays.copyOfRange(image, (int) offsets[i], (int) offsets[i] + data[i].length);
                assertArrayEquals(expected, read(dev, (i + 1) % 2, offsets[i], data[i].length), "range " + i);
                assertArrayEquals(expected, fileBytes(offsets[i], data[i].length), "file range " + i);
            }
        }
    }

    @Test
    void bufferedWritesOfMixedSizesOnTwoQueuesLandInTheFile() throws IOException {
        mixedWritesLandInTheFile(FileBackend.Options.defaults());
    }

    @Test
    void directWritesOfMixedSizesOnTwoQueuesLandInTheFile() throws IOException {
        mixedWritesLandInTheFile(FileBackend.Options.defaults().direct(true));
    }

    @Test
    void directModeHandsOutAlignedBuffersAndCopesWithUnalignedData() {
        FileBackend store = open(FileBackend.Options.defaults().direct(true).createSize(MIB));
        {
            ByteBuf b = store.allocator().directBuffer(4096, 4096);
            try {
                assertEquals(0, b.memoryAddress() & 4095, "aligned to 4096");
                assertEquals(0, b.writerIndex());
                assertEquals(4096, b.capacity());
            } finally {
                b.release();
            }
            // Data from elsewhere (a heap buffer, an odd offset) is copied once into an aligned buffer.
            byte[] data = random(8192, 3);
            ByteBuf odd =
                    Unpooled.directBuffer(8193).writeByte(0).writeBytes(data).skipBytes(1);
            try {
                StepVerifier.create(store.write(4096, odd, false)).verifyComplete();
                StepVerifier.create(store.read(4096, 8192, PooledByteBufAllocator.DEFAULT))
                        .assertNext(r -> {
                            assertArrayEquals(data, ByteBufUtil.getBytes(r));
                            r.release();
                        })
                        .verifyComplete();
            } finally {
                odd.release();
            }
        }
    }

    @Test
    void fuaAndFlushComplete() throws IOException {
        FileBackend store = open(FileBackend.Options.defaults().createSize(MIB));
        try (VirtualDevice dev = VirtualDevice.serve(store, 1, 8)) {
            byte[] data = random(4096, 5);
            StepVerifier.create(dev.write(0, 8192, Unpooled.wrappedBuffer(data), true))
                    .verifyComplete();
            StepVerifier.create(dev.flush(0)).verifyComplete();
            assertArrayEquals(data, fileBytes(8192, 4096));
        }
    }

    @Test
    void discardPunchesAHoleAndWriteZeroesZeroes() throws IOException {
        FileBackend store = open(FileBackend.Options.defaults().createSize(4L * MIB));
        try (VirtualDevice dev = VirtualDevice.serve(store, 1, 8)) {
            byte[] ones = new byte[MIB];
            Arrays.fill(ones, (byte) 1);
            for (int i = 0; i < 4; i++) {
                dev.write(0, (long) i * MIB, Unpooled.wrappedBuffer(ones)).block(WAIT);
            }
            dev.flush(0).block(WAIT);
            long before = allocatedBlocks();
            dev.discard(0, MIB, MIB).block(WAIT);
            long after = allocatedBlocks();
            assertTrue(after <= before - 2048 + 16, "1 MiB (2048 blocks of 512) freed: " + before + " -> " + after);
            assertArrayEquals(new byte[MIB], fileBytes(MIB, MIB));
            // Zeroing that keeps the range allocated, and zeroing that may unmap.
            StepVerifier.create(dev.submitRaw(0, UblkIo.OP_WRITE_ZEROES, UblkIo.F_NOUNMAP, 2L * MIB, 65536))
                    .expectNext(0)
                    .verifyComplete();
            StepVerifier.create(dev.writeZeroes(0, 3L * MIB + 512, 4096)).verifyComplete();
            assertArrayEquals(new byte[65536], fileBytes(2L * MIB, 65536));
            byte[] around = fileBytes(3L * MIB, 8192);
            for (int i = 0; i < 8192; i++) {
                assertEquals(i >= 512 && i < 4608 ? 0 : 1, around[i], "byte " + i);
            }
            assertArrayEquals(ones, fileBytes(0, MIB), "the rest is untouched");
        }
    }

    @Test
    void aReadPastTheEndOfAFileThatShrankReadsZerosAfterTheData() throws IOException {
        FileBackend store = open(FileBackend.Options.defaults().createSize(65536));
        {
            byte[] data = random(8192, 9);
            store.write(0, Unpooled.wrappedBuffer(data), false).block(WAIT);
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
                f.setLength(4096);
            }
            ByteBuf r = store.read(0, 16384, PooledByteBufAllocator.DEFAULT).block(WAIT);
            try {
                byte[] back = ByteBufUtil.getBytes(r);
                assertArrayEquals(Arrays.copyOf(data, 4096), Arrays.copyOf(back, 4096));
                assertArrayEquals(new byte[12288], Arrays.copyOfRange(back, 4096, 16384));
            } finally {
                r.release();
            }
        }
    }

    @Test
    void aBufferedFileServesInPlaceAndADecoratorAroundItDoesNot() throws IOException {
        Files.write(file, random(65536, 12));
        FileBackend store = open(FileBackend.Options.defaults());
        assertTrue(
                store.capabilities().contains(BlockBackend.Capability.ZERO_COPY),
                store.capabilities().toString());
        Set<BlockBackend.Capability> decorated =
                Backends.from(store).retry(2, Duration.ZERO).capabilities();
        assertFalse(decorated.contains(BlockBackend.Capability.ZERO_COPY), decorated.toString());
        assertTrue(decorated.contains(BlockBackend.Capability.FLUSH), "everything else passes: " + decorated);
        try (VirtualDevice dev = VirtualDevice.serve(store, 1, 4)) {
            // The test kit registers no pages: requests are copied, and served as ever.
            assertArrayEquals(fileBytes(0, 4096), read(dev, 0, 0, 4096));
        }
        store.close().block();
    }

    @Test
    void readOnlyRefusesWritesAndAdvertisesNoWriteCapability() throws IOException {
        Files.write(file, random(65536, 11));
        FileBackend store = open(FileBackend.Options.defaults().readOnly(true));
        try (VirtualDevice dev = VirtualDevice.serve(store, 1, 4)) {
            assertEquals(65536, store.size());
            // Reads may still go in place (zero copy), but nothing that writes: no cache to flush, no FUA, no
            // discard, no zeroing.
            assertEquals(Set.of(BlockBackend.Capability.ZERO_COPY), store.capabilities());
            expectErrno(dev.write(0, 0, Unpooled.wrappedBuffer(new byte[4096])), Errno.EROFS);
            expectErrno(dev.discard(0, 0, 4096), Errno.EROFS);
            assertArrayEquals(fileBytes(4096, 4096), read(dev, 0, 4096, 4096));
        }
    }

    @Test
    void requestsBeyondTheEndFailWithEinval() {
        FileBackend store = open(FileBackend.Options.defaults().createSize(65536));
        try (VirtualDevice dev = VirtualDevice.serve(store, 1, 4)) {
            expectErrno(dev.read(0, 65536 - 4096, 8192), Errno.EINVAL);
            expectErrno(dev.write(0, 65536, Unpooled.wrappedBuffer(new byte[512])), Errno.EINVAL);
        }
    }

    @Test
    void openSaysWhatIsWrong() throws IOException {
        UbdException missing = assertThrows(UbdException.class, () -> FileBackend.open(dir.resolve("nope")));
        assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());
        Files.createFile(file);
        UbdException empty = assertThrows(UbdException.class, () -> FileBackend.open(file));
        assertTrue(empty.getMessage().contains("is empty"), empty.getMessage());
        UbdException directory = assertThrows(UbdException.class, () -> FileBackend.open(dir));
        assertTrue(
                directory.getMessage().contains("neither a regular file nor a block device"), directory.getMessage());
    }

    @Test
    void anUnboundBackendServesOnItsOwnLoopAndClosesIt() {
        FileBackend store =
                FileBackend.open(file, FileBackend.Options.defaults().createSize(MIB));
        try {
            byte[] data = random(65536, 13);
            StepVerifier.create(store.write(0, Unpooled.wrappedBuffer(data), false)
                            .then(store.read(0, 65536, PooledByteBufAllocator.DEFAULT)))
                    .assertNext(r -> {
                        assertArrayEquals(data, ByteBufUtil.getBytes(r));
                        r.release();
                    })
                    .verifyComplete();
        } finally {
            store.close().block(WAIT);
        }
        expectErrno(store.read(0, 4096, PooledByteBufAllocator.DEFAULT), Errno.EBADF, Errno.EIO, 108);
    }

    private static void expectErrno(Mono<?> m, int... errnos) {
        StepVerifier.create(m)
                .expectErrorSatisfies(e -> {
                    int errno = ((UbdIoException) e).errno();
                    assertTrue(Arrays.stream(errnos).anyMatch(x -> x == errno), errno + ": " + e.getMessage());
                })
                .verify(WAIT);
    }

    /**
     * Reads cancelled while they complete, from another thread, thousands of times: each buffer reaches its subscriber
     * (who releases it) or is released by the backend, whichever side of the race the cancel falls on. Reactor's
     * {@code Mono.create} drops a value (without discarding it) when the cancel is half way through, so that once
     * lost a buffer now and then (seen in PersistentMirrorTest, a resync cancelled by a close); Netty's paranoid leak
     * detector counts what was lost.
     */
    @Test
    void readsCancelledWhileTheyCompleteLoseNoBuffer() throws Exception {
        final int READS = 10_000;
        FileBackend store = open(FileBackend.Options.defaults().createSize(MIB));
        LeakDetection leaks = LeakDetection.install();
        leaks.collect(); // what earlier tests left is theirs
        AtomicLong delivered = new AtomicLong();
        Random random = new Random(7);
        for (int i = 0; i < READS; i++) {
            // Like the server's bridge, the subscriber releases what reaches it even once it cancelled.
            BaseSubscriber<ByteBuf> d = new BaseSubscriber<>() {
                @Override
                protected void hookOnNext(ByteBuf b) {
                    delivered.incrementAndGet();
                    b.release();
                }

                @Override
                protected void hookOnError(Throwable e) {}
            };
            store.read((i % 256) * 4096L, 4096, ByteBufAllocator.DEFAULT).subscribe(d);
            long until = System.nanoTime() + random.nextInt(150_000);
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            d.dispose();
        }
        // Let the last ones end, then count what was collected unreleased.
        StepVerifier.create(store.read(0, 4096, ByteBufAllocator.DEFAULT))
                .consumeNextWith(ByteBuf::release)
                .verifyComplete();
        Thread.sleep(200);
        List<String> lost = leaks.collect();
        System.out.println(
                "cancelled reads: " + delivered.get() + " of " + READS + " delivered, " + lost.size() + " lost");
        assertEquals(List.of(), lost, "buffers lost by cancelled reads");
    }
}

package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.nio.file.ExtendedOpenOption;
import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.io.KernelQueueTransport;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/** The data plane against the real ublk driver: filesystems, fio with verification, stop under load, failures. */
@DeviceTest
class DataPlaneDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long MIB = 1 << 20;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("app-loop"), "blocking calls on the caller's loops");
    }

    private static DeviceSpec spec(long bytes, int queues) {
        return DeviceSpec.builder()
                .capacityBytes(bytes)
                .queues(queues)
                .depth(64)
                .build();
    }

    private static UbdDevice serve(DeviceSpec spec, BlockBackend backend) {
        return Devices.serve(SERVER.get(), spec, backend);
    }

    private static void closeAndCheckGone(UbdDevice dev) {
        Devices.closeAndCheckGone(dev);
    }

    @Test
    void ext4SurvivesUnmountAndMountWithEveryChecksum() {
        UbdDevice dev = serve(spec(64 * MIB, 1), new MemoryBackend(64 * MIB));
        try {
            String b = dev.blockDevicePath();
            Vm.sh(
                            120,
                            "set -e; mkfs.ext4 -q -F " + b + "; mkdir -p /mnt/ubd; mount " + b + " /mnt/ubd;"
                                    + " for i in 1 2 3 4 5 6 7 8 9 10 11 12; do head -c $((i * 137000)) /dev/urandom > /mnt/ubd/f$i; done;"
                                    + " mkdir -p /mnt/ubd/dir; cp /mnt/ubd/f3 /mnt/ubd/dir/copy;"
                                    + " (cd /mnt/ubd && sha256sum f* dir/copy > /var/tmp/ubd-sums); umount /mnt/ubd")
                    .requireSuccess();
            Vm.Result check = Vm.sh(
                            120,
                            "set -e; mount " + b + " /mnt/ubd; cd /mnt/ubd; sha256sum -c /var/tmp/ubd-sums;"
                                    + " cd /; umount /mnt/ubd")
                    .requireSuccess();
            assertEquals(
                    13, check.output().lines().filter(l -> l.endsWith(": OK")).count(), check.output());
        } finally {
            Vm.sh(30, "umount /mnt/ubd 2>/dev/null; true");
            closeAndCheckGone(dev);
        }
    }

    @Test
    void fioRandomWritesVerifyWithCrc32cOnTwoQueues() {
        UbdDevice dev = serve(spec(64 * MIB, 2), new MemoryBackend(64 * MIB));
        try {
            assertEquals(2, dev.queues().size());
            for (String bs : List.of("4k", "64k")) {
                Vm.Result r = Vm.sh(
                        300,
                        "fio --name=verify-" + bs + " --filename=" + dev.blockDevicePath()
                                + " --rw=randwrite --bs=" + bs + " --iodepth=32 --ioengine=io_uring --direct=1"
                                + " --size=" + ("4k".equals(bs) ? "8M" : "24M") + " --verify=crc32c --do_verify=1"
                                + " --verify_fatal=1 --output-format=normal"
                                // One job pinned to each CPU, each on its own range: each CPU maps to its own queue.
                                + " --numjobs=2 --offset_increment=" + ("4k".equals(bs) ? "8M" : "24M")
                                + " --cpus_allowed=0,1 --cpus_allowed_policy=split");
                assertEquals(0, r.exitCode(), r.output());
                assertTrue(r.output().contains("err= 0"), r.output());
            }
            assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0, "both queues served IO");
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount());
        } finally {
            closeAndCheckGone(dev);
        }
    }

    @Test
    void fioVerifiesWithIoUringCopiesToo() {
        try (UbdServer uringCopies = UbdServer.builder()
                .dataCopy(KernelQueueTransport.DataCopy.IO_URING)
                .build()) {
            UbdDevice dev = uringCopies
                    .serve(spec(32 * MIB, 2), new MemoryBackend(32 * MIB))
                    .block(WAIT);
            try {
                Vm.Result r = Vm.sh(
                        300,
                        "fio --name=verify-uring --filename=" + dev.blockDevicePath()
                                + " --rw=randwrite --bs=16k --iodepth=16 --ioengine=io_uring --direct=1 --size=16M"
                                + " --verify=crc32c --do_verify=1 --verify_fatal=1");
                assertEquals(0, r.exitCode(), r.output());
                assertTrue(r.output().contains("err= 0"), r.output());
            } finally {
                closeAndCheckGone(dev);
            }
        }
    }

    @Test
    void queuesRunOnTheCallersEventLoopsWhichOutliveTheServer() throws Exception {
        // One loop for two queues: the application's own thread serves both.
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(
                1, new DefaultThreadFactory("app-loop", true), IoUringIoHandler.newFactory());
        try {
            Set<String> threads = ConcurrentHashMap.newKeySet();
            MemoryBackend memory = new MemoryBackend(16 * MIB);
            BlockBackend recording = new BlockBackend() {
                @Override
                public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                    threads.add(Thread.currentThread().getName());
                    return memory.read(offset, length, allocator);
                }

                @Override
                public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                    threads.add(Thread.currentThread().getName());
                    return memory.write(offset, data, fua);
                }
            };
            try (UbdServer own = UbdServer.create(group)) {
                UbdDevice dev = own.serve(spec(16 * MIB, 2), recording).block(WAIT);
                Vm.sh(
                                120,
                                "dd if=/dev/urandom of=" + dev.blockDevicePath() + " bs=64k count=64 oflag=direct"
                                        + " && dd if=" + dev.blockDevicePath() + " of=/dev/null bs=64k iflag=direct")
                        .requireSuccess();
                assertEquals(2, dev.queues().size());
                assertEquals(dev.queue(0).loop(), dev.queue(1).loop());
                closeAndCheckGone(dev);
            }
            assertTrue(
                    !threads.isEmpty() && threads.stream().allMatch(t -> t.startsWith("app-loop")), threads.toString());
            assertFalse(group.isShuttingDown(), "the caller's loops are the caller's to shut down");
            assertEquals(
                    "still usable", group.next().submit(() -> "still usable").get(10, TimeUnit.SECONDS));
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    /** Memory, answered from other threads, with its own unpooled allocator so that its usage can be seen. */
    static final class ElsewhereAnswered implements BlockBackend {
        final MemoryBackend memory;
        final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);

        ElsewhereAnswered(long size) {
            memory = new MemoryBackend(size);
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return Mono.defer(() -> memory.read(offset, length, allocator)).subscribeOn(Schedulers.parallel());
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.defer(() -> memory.write(offset, data, fua)).subscribeOn(Schedulers.parallel());
        }

        @Override
        public ByteBufAllocator allocator() {
            return alloc;
        }
    }

    @Test
    void answersFromOtherThreadsAndMemoryThatFollowsInFlightIo() {
        ElsewhereAnswered backend = new ElsewhereAnswered(32 * MIB);
        UbdDevice dev = serve(
                DeviceSpec.builder()
                        .capacityBytes(32 * MIB)
                        .queues(2)
                        .depth(128)
                        .maxIoBytes(1 << 20)
                        .build(),
                backend);
        try {
            // 2 queues x 128 tags x 1 MiB would be 256 MiB if buffers were set aside per tag.
            assertEquals(0, backend.alloc.metric().usedDirectMemory(), "nothing held while idle");
            Vm.Result r = Vm.sh(
                    300,
                    "fio --name=elsewhere --filename=" + dev.blockDevicePath()
                            + " --rw=randwrite --bs=8k --iodepth=32 --ioengine=io_uring --direct=1 --size=8M"
                            + " --verify=crc32c --do_verify=1 --verify_fatal=1");
            assertEquals(0, r.exitCode(), r.output());
            assertEquals(0, backend.alloc.metric().usedDirectMemory(), "every request buffer was released");
        } finally {
            closeAndCheckGone(dev);
        }
    }

    /**
     * IO order (the kernel's ublk selftests generic_01/02): one writer's sequential writes, on one queue, reach the
     * backend in the order of their offsets. fio writes 8 MiB sequentially (4k, O_DIRECT, depth 16) and a backend in
     * front of memory records each WRITE's offset and length as it arrives: they must tile the range in order.
     */
    @Test
    void sequentialWritesOfOneWriterReachTheBackendInOrder() {
        long size = 16 * MIB;
        MemoryBackend memory = new MemoryBackend(size);
        List<long[]> arrivals = Collections.synchronizedList(new ArrayList<>());
        BlockBackend recording = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return memory.read(offset, length, allocator);
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                arrivals.add(new long[] {offset, data.readableBytes()});
                return memory.write(offset, data, fua);
            }

            @Override
            public long size() {
                return size;
            }
        };
        UbdDevice dev = serve(spec(size, 1), recording);
        try {
            Vm.Result r = Vm.sh(
                    300,
                    "fio --name=seq --filename=" + dev.blockDevicePath() + " --rw=write --bs=4k"
                            + " --iodepth=16 --ioengine=io_uring --direct=1 --size=8M");
            assertEquals(0, r.exitCode(), r.output());
            assertTrue(r.output().contains("err= 0"), r.output());
        } finally {
            closeAndCheckGone(dev);
        }
        List<long[]> writes;
        synchronized (arrivals) {
            writes = List.copyOf(arrivals);
        }
        long next = 0;
        long bytes = 0;
        List<String> outOfOrder = new ArrayList<>();
        for (int i = 0; i < writes.size(); i++) {
            long[] w = writes.get(i);
            if (w[0] != next && outOfOrder.size() < 10) {
                outOfOrder.add("#" + i + " at " + w[0] + " (expected " + next + ")");
            }
            next = w[0] + w[1];
            bytes += w[1];
        }
        System.out.println(
                "sequential order: " + writes.size() + " writes, " + bytes + " bytes, out of order: " + outOfOrder);
        assertEquals(8 * MIB, bytes, "every byte written once");
        assertEquals(List.of(), outOfOrder, "writes out of order among " + writes.size());
    }

    @Test
    void ddReadsANullDevice() {
        UbdDevice dev = serve(spec(64 * MIB, 1), new NullBackend());
        try {
            Vm.Result r = Vm.sh(120, "dd if=" + dev.blockDevicePath() + " of=/dev/null bs=1M count=64 iflag=direct")
                    .requireSuccess();
            assertTrue(r.output().contains("67108864 bytes"), r.output());
            Vm.Result zeros = Vm.sh(60, "cmp -n 1048576 " + dev.blockDevicePath() + " /dev/zero && echo same")
                    .requireSuccess();
            assertTrue(zeros.output().contains("same"), zeros.output());
        } finally {
            closeAndCheckGone(dev);
        }
    }

    @Test
    void stoppingTheServerUnderFioEndsFioWithErrorsAndRemovesTheDevice() throws Exception {
        UbdDevice dev = serve(spec(64 * MIB, 2), new MemoryBackend(64 * MIB));
        Process fio = new ProcessBuilder(
                        "fio",
                        "--name=busy",
                        "--filename=" + dev.blockDevicePath(),
                        "--rw=randrw",
                        "--bs=4k",
                        "--iodepth=16",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--size=64M",
                        "--time_based",
                        "--runtime=120")
                .redirectErrorStream(true)
                .start();
        try {
            // Let fio get going, then stop the device under it.
            Thread.sleep(4000);
            assertTrue(fio.isAlive(), "fio runs");
            long before = dev.queue(0).completedCount() + dev.queue(1).completedCount();
            assertTrue(before > 0, "fio's IO reached the queues");
            dev.close().block(WAIT);
            assertTrue(fio.waitFor(60, TimeUnit.SECONDS), "fio ended rather than hung");
            String out = new String(fio.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertNotEquals(0, fio.exitValue(), out);
            assertFalse(Files.exists(Path.of(dev.blockDevicePath())));
            assertFalse(Vm.deviceExists(dev.id()));
        } finally {
            fio.destroyForcibly();
        }
    }

    @Test
    void deviceOpenedButNeverStartedClosesPromptly() {
        long t0 = System.nanoTime();
        UbdDevice dev = SERVER.get()
                .open(spec(16 * MIB, 2), PooledByteBufAllocator.DEFAULT)
                .block(WAIT);
        assertTrue(Vm.deviceExists(dev.id()));
        dev.queues().forEach(q -> q.requests().subscribe());
        closeAndCheckGone(dev);
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20), "closed without waiting for a timeout");
        dev.queues().forEach(q -> assertTrue(q.onTerminated().block(WAIT) == null));
    }

    @Test
    void closeWithAStuckBackendIsBoundedAndFinishesWhenTheBackendLetsGo() throws Exception {
        Sinks.Empty<Void> letGo = Sinks.empty();
        CountDownLatch stuck = new CountDownLatch(1);
        BlockBackend holdsOneRead = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                Mono<ByteBuf> zeros =
                        Mono.fromSupplier(() -> allocator.directBuffer(length).writeZero(length));
                if (offset == 8 * MIB) {
                    stuck.countDown();
                    return letGo.asMono().then(zeros);
                }
                return zeros;
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.empty();
            }
        };
        try (UbdServer quick = UbdServer.builder()
                .control(UbdControl.open(UbdControl.CONTROL_PATH, Duration.ofSeconds(3)))
                .build()) {
            UbdDevice dev = quick.serve(spec(16 * MIB, 1), holdsOneRead).block(WAIT);
            Process dd = new ProcessBuilder(
                            "dd",
                            "if=" + dev.blockDevicePath(),
                            "of=/dev/null",
                            "bs=4k",
                            "count=1",
                            "skip=2048",
                            "iflag=direct")
                    .redirectErrorStream(true)
                    .start();
            try {
                assertTrue(stuck.await(60, TimeUnit.SECONDS), "the read reached the backend");
                long t0 = System.nanoTime();
                StepVerifier.create(dev.close())
                        .expectError(UbdTimeoutException.class)
                        .verify(WAIT);
                assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "close() gave up within its bound");
                assertTrue(Vm.deviceExists(dev.id()), "the device waits for its last request");
                letGo.tryEmitEmpty();
                dev.onClose().block(WAIT);
                assertFalse(Vm.deviceExists(dev.id()), "then it finished closing by itself");
                assertTrue(dd.waitFor(60, TimeUnit.SECONDS), "the reader got its answer");
            } finally {
                dd.destroyForcibly();
            }
        }
    }

    /** Fails every 10th write it is given with EIO; everything else goes to memory. */
    static final class EveryTenthWriteFails implements BlockBackend {
        final MemoryBackend memory = new MemoryBackend(16 * MIB);
        final AtomicLong writes = new AtomicLong();

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return memory.read(offset, length, allocator);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            if (writes.incrementAndGet() % 10 == 0) {
                return Mono.error(new UbdIoException(Errno.EIO, "every tenth write fails"));
            }
            return memory.write(offset, data, fua);
        }
    }

    @Test
    void aBackendFailingEveryTenthWriteFailsExactlyThoseWrites() throws IOException {
        EveryTenthWriteFails backend = new EveryTenthWriteFails();
        UbdDevice dev = serve(spec(16 * MIB, 1), backend);
        try {
            List<Integer> failed = new ArrayList<>();
            // Exactly 4096 bytes at an aligned address: an aligned slice of 8 KiB is 8 KiB long when the allocation
            // happens to be aligned already, and clear() would then write 8 KiB.
            ByteBuffer buf = ByteBuffer.allocateDirect(8192).alignedSlice(4096).slice(0, 4096);
            try (FileChannel ch = FileChannel.open(
                    Path.of(dev.blockDevicePath()),
                    StandardOpenOption.WRITE,
                    StandardOpenOption.READ,
                    ExtendedOpenOption.DIRECT)) {
                for (int i = 1; i <= 100; i++) {
                    buf.clear();
                    for (int j = 0; j < 4096; j++) {
                        buf.put(j, (byte) i);
                    }
                    try {
                        assertEquals(4096, ch.write(buf, i * 4096L));
                    } catch (IOException e) {
                        assertTrue(e.getMessage().contains("Input/output error"), e.toString());
                        failed.add(i);
                    }
                }
                assertEquals(List.of(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), failed);
                // The device stays live: a written block reads back, a failed one was never stored.
                buf.clear();
                ch.read(buf, 7 * 4096L);
                byte[] sevens = new byte[4096];
                Arrays.fill(sevens, (byte) 7);
                byte[] got = new byte[4096];
                buf.flip().get(got);
                assertArrayEquals(sevens, got);
                buf.clear();
                ch.read(buf, 10 * 4096L);
                buf.flip().get(got);
                assertArrayEquals(new byte[4096], got);
            }
            assertEquals(100, backend.writes.get());
            assertEquals(10, dev.queue(0).failedCount());
        } finally {
            closeAndCheckGone(dev);
        }
    }
}

package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.targets.nbd.NbdBackend;
import dev.reactorubd.targets.nbd.NbdOptions;
import dev.reactorubd.targets.nbd.NbdServers;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Stopping and deleting a device while fio drives it, on every kind of target: close() returns within its bound, every
 * request the backend was given was answered (each Mono it returned terminated) and none is left in flight, fio ends
 * with errors rather than hangs, and the device and its block device are gone.
 *
 * <p>Bounds assumed (the VM emulates its CPU): close() within 30 s, fio ends within 60 s of it.
 */
@DeviceTest
class StopUnderLoadDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long MIB = 1 << 20;
    private static final long SIZE = 64 * MIB;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @TempDir
    Path dir;

    private final List<BlockBackend> toClose = new ArrayList<>();
    private NbdServers.Server nbdServer;

    @AfterEach
    void cleanUp() {
        toClose.forEach(b -> b.close().block(WAIT));
        if (nbdServer != null) {
            nbdServer.kill();
        }
    }

    private BlockBackend target(String kind) throws Exception {
        BlockBackend b = switch (kind) {
            case "memory" -> new MemoryBackend(SIZE);
            case "file" -> FileBackend.open(NbdServers.exportFile(dir, "file.img", SIZE));
            case "nbd" -> {
                int port = NbdServers.freePort();
                nbdServer = NbdServers.nbdServer(dir, NbdServers.exportFile(dir, "nbd.img", SIZE), port, "disk");
                yield NbdBackend.connect(
                                "nbd://127.0.0.1:" + port + "/disk",
                                NbdOptions.builder()
                                        .connectTimeout(NbdServers.VM_CONNECT_TIMEOUT)
                                        .build())
                        .block(WAIT);
            }
            case "mirror" ->
                Backends.mirror(
                        FileBackend.open(NbdServers.exportFile(dir, "mirror.img", SIZE)), new MemoryBackend(SIZE));
            default -> throw new IllegalArgumentException(kind);
        };
        toClose.add(b);
        return b;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"memory", "file", "nbd", "mirror"})
    void closingUnderFioIsBoundedAnswersEveryRequestAndRemovesTheDevice(String kind) throws Exception {
        Counting counting = new Counting(target(kind));
        DeviceSpec spec =
                DeviceSpec.builder().capacityBytes(SIZE).queues(2).depth(64).build();
        UbdDevice dev = Devices.serve(SERVER.get(), spec, counting);
        Process fio = new ProcessBuilder(
                        "fio",
                        "--name=busy",
                        "--filename=" + dev.blockDevicePath(),
                        "--rw=randrw",
                        "--bsrange=4k-64k",
                        "--iodepth=32",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--size=" + SIZE / 2,
                        "--offset_increment=" + SIZE / 2,
                        "--numjobs=2",
                        "--cpus_allowed=0,1",
                        "--cpus_allowed_policy=split",
                        "--time_based",
                        "--runtime=300")
                .redirectErrorStream(true)
                .start();
        try {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (counting.finished.get() < 1000 && fio.isAlive() && System.nanoTime() < end) {
                Thread.sleep(50);
            }
            assertTrue(fio.isAlive(), "fio runs");
            assertTrue(counting.finished.get() >= 1000, "fio's IO reached the backend: " + counting);
            long t0 = System.nanoTime();
            dev.close().block(WAIT);
            long closeMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            System.out.println("stop under load, " + kind + ": close() took " + closeMs + " ms; backend " + counting
                    + "; queues completed "
                    + dev.queues().stream().mapToLong(UbdQueue::completedCount).sum()
                    + ", failed "
                    + dev.queues().stream().mapToLong(UbdQueue::failedCount).sum());
            assertTrue(closeMs < 30_000, "close() took " + closeMs + " ms");
            assertEquals(
                    counting.started.get(), counting.finished.get(), "every request given to the backend was answered");
            for (UbdQueue q : dev.queues()) {
                assertEquals(0, q.inFlightCount(), q + " has nothing in flight");
                assertEquals(0, q.waitingForDemand(), q + " has nothing waiting");
            }
            assertTrue(fio.waitFor(60, TimeUnit.SECONDS), "fio ended rather than hung");
            String out = new String(fio.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertNotEquals(0, fio.exitValue(), out);
            assertFalse(Files.exists(Path.of(dev.blockDevicePath())), dev.blockDevicePath() + " is gone");
            assertFalse(Vm.deviceExists(dev.id()), "device " + dev.id() + " is deleted");
        } finally {
            fio.destroyForcibly();
            fio.waitFor(30, TimeUnit.SECONDS);
        }
    }

    /**
     * The same on memory, file, NBD and mirror devices at once: fio drives all four, then all four are closed
     * concurrently. Each close() completes within its bound (60 s here: four at once on an emulated CPU) with every
     * backend request answered, every fio ends with errors rather than hangs, and no device is left.
     */
    @org.junit.jupiter.api.Test
    void closingFourKindsAtOnceUnderFioIsBoundedAndLeavesNoDevice() throws Exception {
        List<String> kinds = List.of("memory", "file", "nbd", "mirror");
        DeviceSpec spec =
                DeviceSpec.builder().capacityBytes(SIZE).queues(2).depth(32).build();
        List<Counting> backends = new ArrayList<>();
        List<UbdDevice> devs = new ArrayList<>();
        List<Process> fios = new ArrayList<>();
        try {
            for (String kind : kinds) {
                Counting c = new Counting(target(kind));
                backends.add(c);
                devs.add(Devices.serve(SERVER.get(), spec, c));
            }
            for (UbdDevice dev : devs) {
                fios.add(new ProcessBuilder(
                                "fio",
                                "--name=busy",
                                "--filename=" + dev.blockDevicePath(),
                                "--rw=randrw",
                                "--bsrange=4k-64k",
                                "--iodepth=16",
                                "--ioengine=io_uring",
                                "--direct=1",
                                "--size=" + SIZE,
                                "--time_based",
                                "--runtime=300")
                        .redirectErrorStream(true)
                        .start());
            }
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (backends.stream().anyMatch(c -> c.finished.get() < 200) && System.nanoTime() < end) {
                Thread.sleep(50);
            }
            for (int i = 0; i < kinds.size(); i++) {
                assertTrue(fios.get(i).isAlive(), kinds.get(i) + ": fio runs");
                assertTrue(
                        backends.get(i).finished.get() >= 200,
                        kinds.get(i) + ": fio's IO reached the backend: " + backends.get(i));
            }
            long t0 = System.nanoTime();
            List<Long> closeMs = Collections.synchronizedList(new ArrayList<>());
            Flux.fromIterable(devs)
                    .flatMap(d -> d.close()
                            .doOnSuccess(v -> closeMs.add(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0))))
                    .then()
                    .block(WAIT);
            System.out.println("stop four at once: close() times " + closeMs + " ms; backends " + backends);
            assertEquals(kinds.size(), closeMs.size(), "every close completed");
            closeMs.forEach(ms -> assertTrue(ms < 60_000, "close() took " + ms + " ms"));
            for (int i = 0; i < kinds.size(); i++) {
                Counting c = backends.get(i);
                assertEquals(c.started.get(), c.finished.get(), kinds.get(i) + ": every request was answered");
                Process fio = fios.get(i);
                assertTrue(fio.waitFor(60, TimeUnit.SECONDS), kinds.get(i) + ": fio ended rather than hung");
                assertNotEquals(
                        0, fio.exitValue(), new String(fio.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
                UbdDevice dev = devs.get(i);
                assertFalse(Files.exists(Path.of(dev.blockDevicePath())), dev.blockDevicePath() + " is gone");
                assertFalse(Vm.deviceExists(dev.id()), "device " + dev.id() + " is deleted");
            }
            assertEquals(
                    "",
                    Vm.sh(10, "ls /sys/class/ublk-char/ 2>/dev/null || true")
                            .output()
                            .trim(),
                    "no device left");
        } finally {
            for (Process fio : fios) {
                fio.destroyForcibly();
                fio.waitFor(30, TimeUnit.SECONDS);
            }
            for (UbdDevice dev : devs) {
                if (!dev.isDisposed()) {
                    dev.close().onErrorResume(e -> Mono.empty()).block(WAIT);
                }
            }
        }
    }

    /** Passes every request on, counting those started and those whose Mono terminated (value, empty, error or cancel). */
    static final class Counting implements BlockBackend {
        final BlockBackend delegate;
        final AtomicLong started;
        final AtomicLong finished;

        Counting(BlockBackend delegate) {
            this(delegate, new AtomicLong(), new AtomicLong());
        }

        private Counting(BlockBackend delegate, AtomicLong started, AtomicLong finished) {
            this.delegate = delegate;
            this.started = started;
            this.finished = finished;
        }

        private <T> Mono<T> counted(Mono<T> m) {
            return Mono.defer(() -> {
                        started.incrementAndGet();
                        return m;
                    })
                    .doFinally(s -> finished.incrementAndGet());
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return counted(Mono.defer(() -> delegate.read(offset, length, allocator)));
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return counted(Mono.defer(() -> delegate.write(offset, data, fua)));
        }

        @Override
        public Mono<Void> flush() {
            return counted(Mono.defer(delegate::flush));
        }

        @Override
        public Mono<Void> discard(long offset, long length) {
            return counted(Mono.defer(() -> delegate.discard(offset, length)));
        }

        @Override
        public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
            return counted(Mono.defer(() -> delegate.writeZeroes(offset, length, noUnmap)));
        }

        @Override
        public Set<Capability> capabilities() {
            return delegate.capabilities();
        }

        @Override
        public ByteBufAllocator allocator() {
            return delegate.allocator();
        }

        @Override
        public long size() {
            return delegate.size();
        }

        @Override
        public Mono<BlockBackend> bind(UbdQueue queue) {
            return delegate.bind(queue).map(d -> new Counting(d, started, finished));
        }

        @Override
        public Mono<Void> close() {
            return delegate.close();
        }

        @Override
        public String toString() {
            return "started " + started.get() + ", finished " + finished.get();
        }
    }
}

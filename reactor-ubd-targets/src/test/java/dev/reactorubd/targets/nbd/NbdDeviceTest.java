package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The NBD target under the real ublk driver: fio with verification through /dev/ublkbN to nbd-server and qemu-nbd
 * (TCP and Unix socket) on loopback inside the test VM, a server killed under fio with retry off (fio ends with errors
 * within a bound, the device closes cleanly), and a server restarted under fio with retry on (fio's verify passes:
 * 8 loops of writing the 32 MiB export and verifying it, the server killed once the first 200 requests were served and
 * started again 3 s later on the same port and file).
 *
 * <p>Bounds assumed (the VM emulates its CPU): 90 s for device control and backend calls, 300 s for a fio run, fio
 * ends within 30 s of a kill with retry off, the restarted server is down about 3 s.
 */
@DeviceTest
class NbdDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long MIB = 1 << 20;
    private static final long SIZE = 32 * MIB;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @TempDir
    Path dir;

    private final List<NbdBackend> backends = new ArrayList<>();
    private final List<NbdServers.Server> servers = new ArrayList<>();

    @AfterEach
    void cleanUpAndCheck() {
        for (NbdBackend b : backends) {
            b.close().block(WAIT);
        }
        servers.forEach(NbdServers.Server::kill);
    }

    private NbdServers.Server started(NbdServers.Server s) {
        servers.add(s);
        return s;
    }

    private NbdBackend connect(String uri, NbdOptions options) {
        NbdBackend b = NbdBackend.connect(uri, options).block(WAIT);
        backends.add(b);
        assertEquals(SIZE, b.size());
        return b;
    }

    private static UbdDevice serve(NbdBackend nbd) {
        DeviceSpec spec = DeviceSpec.builder()
                .capacityBytes(nbd.size())
                .queues(2)
                .depth(64)
                .logicalBlockSize(Math.max(512, nbd.minimumBlockSize()))
                .readOnly(nbd.readOnly())
                .build();
        return Devices.serve(SERVER.get(), spec, nbd);
    }

    private void fioVerifies(NbdBackend nbd, String name) {
        UbdDevice dev = serve(nbd);
        try {
            if (nbd.multiConn()) {
                assertEquals(3, nbd.connectionCount(), "a connection per queue, and the backend's own");
            }
            Devices.fioVerify(dev, name, SIZE);
            assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0, "both queues served");
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount());
            assertZeroCopyWrites(nbd, dev);
        } finally {
            Devices.closeAndCheckGone(dev);
        }
    }

    /**
     * With multi-conn on a kernel with AUTO_BUF_REG (6.16+), each queue's connection sends WRITEs straight from the
     * request's pages: both queues served some in place. Elsewhere (6.12, or one shared connection) none is.
     */
    private static void assertZeroCopyWrites(NbdBackend nbd, UbdDevice dev) {
        long q0 = dev.queue(0).zeroCopyCount();
        long q1 = dev.queue(1).zeroCopyCount();
        System.out.println(nbd + ": " + (q0 + q1) + " of "
                + (dev.queue(0).completedCount() + dev.queue(1).completedCount()) + " requests served in place");
        if (nbd.multiConn() && Vm.features().contains(UblkFeature.AUTO_BUF_REG)) {
            assertTrue(dev.info().has(UblkFeature.AUTO_BUF_REG), "added with AUTO_BUF_REG: " + dev.info());
            assertTrue(q0 > 0 && q1 > 0, "both queues sent WRITEs from the request's pages: " + q0 + ", " + q1);
        } else {
            assertEquals(0, q0 + q1, "nothing in place without multi-conn or AUTO_BUF_REG");
        }
    }

    @Test
    void fioVerifiesThroughNbdServer() throws Exception {
        Path file = NbdServers.exportFile(dir, "nbd-server.img", SIZE);
        int port = NbdServers.freePort();
        started(NbdServers.nbdServer(dir, file, port, "disk"));
        fioVerifies(
                connect(
                        "nbd://127.0.0.1:" + port + "/disk",
                        NbdOptions.builder()
                                .connectTimeout(NbdServers.VM_CONNECT_TIMEOUT)
                                .build()),
                "nbd-server");
    }

    @Test
    void fioVerifiesThroughQemuNbdOverTcp() throws Exception {
        Path file = NbdServers.exportFile(dir, "qemu-tcp.img", SIZE);
        int port = NbdServers.freePort();
        started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
        NbdBackend nbd = connect("nbd://127.0.0.1:" + port + "/vol", NbdOptions.defaults());
        assertTrue(nbd.multiConn(), "qemu-nbd --shared=8 allows multi-conn");
        fioVerifies(nbd, "qemu-tcp");
    }

    @Test
    void fioVerifiesThroughQemuNbdOverAUnixSocket() throws Exception {
        Path file = NbdServers.exportFile(dir, "qemu-unix.img", SIZE);
        Path socket = dir.resolve("qemu.sock");
        started(NbdServers.qemuNbd(dir, file, 0, socket, "vol", 8));
        fioVerifies(connect("nbd+unix:///vol?socket=" + socket, NbdOptions.defaults()), "qemu-unix");
    }

    /** Starts fio in the background, its output in a file; waits until the device served some of its IO. */
    private static Process fioInBackground(List<String> args, UbdDevice dev, Path out) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("fio", "--filename=" + dev.blockDevicePath()));
        cmd.addAll(args);
        Process fio = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .start();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (dev.queue(0).completedCount() + dev.queue(1).completedCount() < 200 && System.nanoTime() < end) {
            assertTrue(fio.isAlive(), "fio runs:\n" + Files.readString(out));
            Thread.sleep(50);
        }
        assertTrue(dev.queue(0).completedCount() + dev.queue(1).completedCount() >= 200, "fio's IO reached the queues");
        return fio;
    }

    @Test
    void aServerKilledUnderFioWithRetryOffEndsFioWithErrorsPromptly() throws Exception {
        Path file = NbdServers.exportFile(dir, "killed.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server nbdServer = started(NbdServers.nbdServer(dir, file, port, "disk"));
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/disk",
                NbdOptions.builder()
                        .noRetry()
                        .connectTimeout(NbdServers.VM_CONNECT_TIMEOUT)
                        .requestTimeout(Duration.ofSeconds(20))
                        .build());
        UbdDevice dev = serve(nbd);
        Path out = dir.resolve("fio-killed.out");
        Process fio = fioInBackground(
                List.of(
                        "--name=killed",
                        "--rw=randrw",
                        "--bsrange=4k-64k",
                        "--iodepth=32",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--size=" + SIZE,
                        "--time_based",
                        "--runtime=120"),
                dev,
                out);
        try {
            long t0 = System.nanoTime();
            nbdServer.signal("KILL");
            assertTrue(fio.waitFor(30, TimeUnit.SECONDS), "fio ended within 30 s of the kill rather than hung");
            long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
            String output = Files.readString(out, StandardCharsets.UTF_8);
            assertNotEquals(0, fio.exitValue(), output);
            assertTrue(output.contains("Input/output error"), output);
            assertTrue(dev.queue(0).failedCount() + dev.queue(1).failedCount() > 0, "requests failed");
            assertTrue(seconds < 30, "fio ended " + seconds + " s after the kill");
            System.out.println("nbd-server killed under fio (retry off): fio ended " + seconds + " s later");
        } finally {
            fio.destroyForcibly();
            long t1 = System.nanoTime();
            Devices.closeAndCheckGone(dev);
            assertTrue(System.nanoTime() - t1 < TimeUnit.SECONDS.toNanos(30), "the device closed promptly");
        }
    }

    @Test
    void aServerRestartedUnderFioWithRetryOnLetsFioVerify() throws Exception {
        Path file = NbdServers.exportFile(dir, "restarted.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server qemu = started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
        NbdBackend nbd = connect(
                "nbd://127.0.0.1:" + port + "/vol",
                NbdOptions.builder()
                        .reconnectAttempts(200)
                        .backoff(Duration.ofMillis(100), Duration.ofSeconds(1))
                        .requestTimeout(Duration.ofSeconds(120))
                        .build());
        UbdDevice dev = serve(nbd);
        Path out = dir.resolve("fio-restarted.out");
        Process fio = fioInBackground(
                List.of(
                        "--name=restarted",
                        "--rw=randwrite",
                        "--bsrange=4k-128k",
                        "--iodepth=32",
                        "--ioengine=io_uring",
                        "--direct=1",
                        "--size=" + SIZE,
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1",
                        "--loops=8"),
                dev,
                out);
        try {
            qemu.kill();
            Thread.sleep(3000);
            assertTrue(fio.isAlive(), "fio waits while the server is down:\n" + Files.readString(out));
            started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8));
            assertTrue(fio.waitFor(300, TimeUnit.SECONDS), "fio finished after the restart");
            String output = Files.readString(out, StandardCharsets.UTF_8);
            assertEquals(0, fio.exitValue(), output);
            assertTrue(output.contains("err= 0"), output);
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");
            assertEquals(3, nbd.connectionCount(), "every connection came back");
            // Writes in flight when the server died were sent again from the same pages over the new connection.
            assertZeroCopyWrites(nbd, dev);
        } finally {
            fio.destroyForcibly();
            Devices.closeAndCheckGone(dev);
        }
    }
}

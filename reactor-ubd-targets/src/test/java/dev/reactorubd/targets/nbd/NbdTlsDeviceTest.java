package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.NewestKernelOnly;
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
import reactor.test.StepVerifier;

/**
 * {@code nbds://} under the real ublk driver: fio with verification through /dev/ublkbN to qemu-nbd (tls-creds-x509,
 * asking for a client certificate) and nbd-server (force_tls), with certificates the test makes with openssl; a
 * plain server and a certificate from another CA refused with a clear error; qemu-nbd restarted under fio, the
 * reconnect doing TLS again (the new server takes nothing else) and fio's verify passing.
 *
 * <p>Bounds assumed (the VM emulates its CPU, and TLS costs it more): 90 s for device control and backend calls,
 * 600 s for a fio run, the restarted server down about 3 s.
 *
 * <p>On the newest kernel only: TLS is the client's; NbdDeviceTest drives the NBD target through ublk on every kernel.
 */
@DeviceTest
@NewestKernelOnly
class NbdTlsDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final long MIB = 1 << 20;
    private static final long SIZE = 16 * MIB;
    private static final NbdOptions OPTIONS =
            NbdOptions.builder().connectTimeout(NbdServers.VM_CONNECT_TIMEOUT).build();

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    @TempDir
    Path dir;

    private final List<NbdBackend> backends = new ArrayList<>();
    private final List<NbdServers.Server> servers = new ArrayList<>();

    @AfterEach
    void cleanUp() {
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
        assertTrue(b.uri().tls());
        assertFalse(b.capabilities().contains(Capability.ZERO_COPY), "no zero copy around TLS: " + b.capabilities());
        return b;
    }

    private static UbdDevice serve(NbdBackend nbd) {
        DeviceSpec spec = DeviceSpec.builder()
                .capacityBytes(nbd.size())
                .queues(2)
                .depth(32)
                .logicalBlockSize(Math.max(512, nbd.minimumBlockSize()))
                .readOnly(nbd.readOnly())
                .build();
        return Devices.serve(SERVER.get(), spec, nbd);
    }

    private static String[] qemuTls(Path serverDir) {
        return new String[] {
            "--object",
            "tls-creds-x509,id=tls0,dir=" + serverDir + ",endpoint=server,verify-peer=on",
            "--tls-creds",
            "tls0"
        };
    }

    private void fioVerifies(NbdBackend nbd, String name) {
        UbdDevice dev = serve(nbd);
        try {
            Devices.fioVerify(dev, name, SIZE);
            assertTrue(dev.queue(0).completedCount() > 0 && dev.queue(1).completedCount() > 0, "both queues served");
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount());
            // Every WRITE went through the SslHandler: none from the request's registered pages.
            assertEquals(0, dev.queue(0).zeroCopyCount() + dev.queue(1).zeroCopyCount());
        } finally {
            Devices.closeAndCheckGone(dev);
        }
    }

    @Test
    void fioVerifiesOverTlsThroughQemuNbdWithAClientCertificate() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "qemu-tls.img", SIZE);
        int port = NbdServers.freePort();
        started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8, qemuTls(certs.serverDir())));
        NbdBackend nbd = connect("nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.clientDir(), OPTIONS);
        assertTrue(nbd.multiConn(), "qemu-nbd --shared=8 allows multi-conn");
        fioVerifies(nbd, "qemu-tls");
        assertEquals(1, nbd.connectionCount(), "the queues' connections closed with the device");
    }

    @Test
    void fioVerifiesOverTlsThroughNbdServer() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "nbd-server-tls.img", SIZE);
        int port = NbdServers.freePort();
        Path s = certs.serverDir();
        started(NbdServers.nbdServer(
                dir,
                file,
                port,
                "disk",
                "    certfile = " + s.resolve("server-cert.pem")
                        + "\n    keyfile = " + s.resolve("server-key.pem") + "\n    cacertfile = "
                        + s.resolve("ca-cert.pem")
                        + "\n    force_tls = true\n",
                ""));
        fioVerifies(
                connect("nbds://127.0.0.1:" + port + "/disk?tls-certificates=" + certs.clientDir(), OPTIONS),
                "nbd-server-tls");
    }

    private static void refused(String uri, String words) {
        StepVerifier.create(NbdBackend.connect(uri, OPTIONS))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException, "a typed error: " + e);
                    assertTrue(e.getMessage().contains(words), e.getMessage());
                    System.out.println("refused as it should be: " + e.getMessage());
                })
                .verify(WAIT);
    }

    @Test
    void aPlainServerAndACertificateFromAnotherCaAreRefused() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path plainFile = NbdServers.exportFile(dir, "plain.img", SIZE);
        int plainPort = NbdServers.freePort();
        started(NbdServers.qemuNbd(dir, plainFile, plainPort, null, "vol", 4));
        refused("nbds://127.0.0.1:" + plainPort + "/vol?tls-certificates=" + certs.clientDir(), "refused TLS");
        Path tlsFile = NbdServers.exportFile(dir, "tls.img", SIZE);
        int tlsPort = NbdServers.freePort();
        started(NbdServers.qemuNbd(dir, tlsFile, tlsPort, null, "vol", 4, qemuTls(certs.serverDir())));
        refused(
                "nbds://127.0.0.1:" + tlsPort + "/vol?tls-certificates=" + certs.otherCaDir(),
                "is not signed by the CA in");
    }

    @Test
    void aServerRestartedUnderFioIsReachedOverTlsAgainAndFioVerifies() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "restarted-tls.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server qemu =
                started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8, qemuTls(certs.serverDir())));
        NbdBackend nbd = connect(
                "nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.clientDir(),
                OPTIONS.toBuilder()
                        .reconnectAttempts(200)
                        .backoff(Duration.ofMillis(100), Duration.ofSeconds(1))
                        .requestTimeout(Duration.ofSeconds(120))
                        .build());
        UbdDevice dev = serve(nbd);
        Path out = dir.resolve("fio-restarted.out");
        List<String> cmd = List.of(
                "fio",
                "--filename=" + dev.blockDevicePath(),
                "--name=restarted-tls",
                "--rw=randwrite",
                "--bsrange=4k-128k",
                "--iodepth=32",
                "--ioengine=io_uring",
                "--direct=1",
                "--size=" + SIZE,
                "--verify=crc32c",
                "--do_verify=1",
                "--verify_fatal=1",
                "--loops=3");
        Process fio = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .start();
        try {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (dev.queue(0).completedCount() + dev.queue(1).completedCount() < 200 && System.nanoTime() < end) {
                assertTrue(fio.isAlive(), "fio runs:\n" + Files.readString(out));
                Thread.sleep(50);
            }
            assertTrue(dev.queue(0).completedCount() + dev.queue(1).completedCount() >= 200, "fio's IO reached us");
            qemu.kill();
            Thread.sleep(3000);
            assertTrue(fio.isAlive(), "fio waits while the server is down:\n" + Files.readString(out));
            // The new server takes TLS only: the reconnects get through only by doing TLS again.
            started(NbdServers.qemuNbd(dir, file, port, null, "vol", 8, qemuTls(certs.serverDir())));
            assertTrue(fio.waitFor(600, TimeUnit.SECONDS), "fio finished after the restart");
            String output = Files.readString(out, StandardCharsets.UTF_8);
            assertEquals(0, fio.exitValue(), output);
            assertTrue(output.contains("err= 0"), output);
            assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");
            assertEquals(3, nbd.connectionCount(), "every connection came back");
            assertEquals(0, dev.queue(0).zeroCopyCount() + dev.queue(1).zeroCopyCount());
        } finally {
            fio.destroyForcibly();
            Devices.closeAndCheckGone(dev);
        }
    }
}

package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdTesting.WAIT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.test.StepVerifier;

/**
 * {@code nbds://} against real TLS servers on loopback (qemu-nbd with tls-creds-x509, nbd-server with certfile and
 * force_tls), with certificates the test makes with openssl: data goes through, and every way TLS can be missing or
 * wrong fails the connect with an NbdException saying what to do.
 */
class NbdTlsHostTest extends NbdHostTest {
    private static final int SIZE = 8 << 20;
    private static final NbdOptions OPTIONS =
            NbdOptions.builder().connectTimeout(Duration.ofSeconds(10)).build();

    @TempDir
    Path dir;

    private String[] qemuTls(Path serverDir, boolean verifyPeer) {
        return new String[] {
            "--object",
            "tls-creds-x509,id=tls0,dir=" + serverDir + ",endpoint=server,verify-peer=" + (verifyPeer ? "on" : "off"),
            "--tls-creds",
            "tls0"
        };
    }

    private NbdException refused(String uri, String words) {
        NbdException[] seen = new NbdException[1];
        StepVerifier.create(NbdBackend.connect(uri, OPTIONS))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException, "a typed error: " + e);
                    assertTrue(e.getMessage().contains(words), e.getMessage());
                    seen[0] = (NbdException) e;
                })
                .verify(WAIT);
        return seen[0];
    }

    @Test
    void qemuNbdOverTlsKeepsTheDataAndNeverSendsFromRegisteredPages() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "tls.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 8, qemuTls(certs.serverDir(), false)));
        NbdBackend nbd = connect("nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.caOnlyDir(), OPTIONS);
        assertEquals(SIZE, nbd.size());
        assertTrue(nbd.multiConn(), NbdProtocol.flagNames(nbd.transmissionFlags()));
        // Each queue's connection does TLS of its own and writes through its channel's SslHandler.
        assertFalse(
                nbd.capabilities().contains(Capability.ZERO_COPY),
                nbd.capabilities().toString());
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            NbdTesting.mixedWritesReadBack(dev, model, 48, 7);
            NbdTesting.wholeDeviceIs(dev, model);
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
            assertEquals(3, nbd.connectionCount(), "the backend's own and one per queue");
        }
        NbdTesting.fileIs(file, model);
        // The same server to a client that does not ask for TLS: refused by the server, with what to do.
        NbdException plain = refused("nbd://127.0.0.1:" + port + "/vol", "requires TLS");
        assertTrue(plain.getMessage().contains("nbds://"), plain.getMessage());
    }

    @Test
    void aCertificateFromAnotherCaOrForAnotherNameIsRefused() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "tls.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 4, qemuTls(certs.serverDir(), false)));
        String base = "nbds://127.0.0.1:" + port + "/vol?tls-certificates=";
        NbdException e = refused(base + certs.otherCaDir(), "is not signed by the CA in");
        assertTrue(e.getMessage().contains("does not go on in plain text"), e.getMessage());
        refused(base + certs.caOnlyDir() + "&tls-hostname=nbd.example.org", "does not name nbd.example.org");
        // The name it does hold, given instead of the address.
        connect(base + certs.caOnlyDir() + "&tls-hostname=localhost", OPTIONS);
        refused("nbds://127.0.0.1:" + port + "/vol", "no CA certificate is configured");
        // Credentials from the options rather than the URI.
        connect(
                "nbds://127.0.0.1:" + port + "/vol",
                OPTIONS.toBuilder().tlsCertificates(certs.caOnlyDir()).build());
    }

    @Test
    void aServerThatWantsAClientCertificateGetsOnlyOneFromItsCa() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "tls.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 4, qemuTls(certs.serverDir(), true)));
        String base = "nbds://127.0.0.1:" + port + "/vol?tls-certificates=";
        NbdException none = refused(base + certs.caOnlyDir(), "TLS");
        NbdException stranger = refused(base + certs.strangerDir(), "TLS");
        System.out.println("no client certificate: " + none.getMessage());
        System.out.println("a client certificate from another CA: " + stranger.getMessage());
        NbdBackend nbd = connect(base + certs.clientDir(), OPTIONS);
        ByteBuf data = nbd.read(0, 4096, null).block(WAIT);
        data.release();
    }

    @Test
    void overAUnixSocketTheChainIsCheckedAndTheNameWhenOneIsGiven() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "unix-tls.img", SIZE);
        Path socket = dir.resolve("tls.sock");
        closing(NbdServers.qemuNbd(dir, file, 0, socket, "vol", 4, qemuTls(certs.serverDir(), false)));
        String base = "nbds+unix:///vol?socket=" + socket + "&tls-certificates=";
        NbdBackend nbd = connect(base + certs.caOnlyDir(), OPTIONS);
        byte[] data = new byte[8192];
        Arrays.fill(data, (byte) 0x6b);
        nbd.write(8192, Unpooled.wrappedBuffer(data), false).block(WAIT);
        ByteBuf back = nbd.read(8192, data.length, null).block(WAIT);
        try {
            assertArrayEquals(data, ByteBufUtil.getBytes(back));
        } finally {
            back.release();
        }
        connect(base + certs.caOnlyDir() + "&tls-hostname=localhost", OPTIONS);
        refused(base + certs.caOnlyDir() + "&tls-hostname=nbd.example.org", "does not name nbd.example.org");
        refused(base + certs.otherCaDir(), "is not signed by the CA in");
    }

    @Test
    void credentialsFileByFileFromTheOptions() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "options-tls.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 4, qemuTls(certs.serverDir(), true)));
        Path c = certs.clientDir();
        NbdOptions files = OPTIONS.toBuilder()
                .tlsCaFile(c.resolve("ca-cert.pem"))
                .tlsClientCertificate(c.resolve("client-cert.pem"), c.resolve("client-key.pem"))
                .build();
        connect("nbds://127.0.0.1:" + port + "/vol", files);
        // The files win over the options' directory (here the stranger's: a client certificate from another CA)...
        connect(
                "nbds://127.0.0.1:" + port + "/vol",
                files.toBuilder().tlsCertificates(certs.strangerDir()).build());
        // ... and the URI's directory wins over them all.
        StepVerifier.create(NbdBackend.connect(
                        "nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.strangerDir(), files))
                .expectError(NbdException.class)
                .verify(WAIT);
        Assertions.assertThrows(
                IllegalArgumentException.class,
                () -> NbdOptions.builder().tlsClientCertificate(c.resolve("client-cert.pem"), null));
    }

    @Test
    void aPlainServerIsRefusedWhenTlsIsAskedFor() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "plain.img", SIZE);
        int port = NbdServers.freePort();
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 4));
        NbdException e =
                refused("nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.caOnlyDir(), "refused TLS");
        assertTrue(e.getMessage().contains("does not go on in plain text"), e.getMessage());
    }

    @Test
    void aRestartedServerIsReachedOverTlsAgain() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "tls.img", SIZE);
        int port = NbdServers.freePort();
        NbdServers.Server first =
                NbdServers.qemuNbd(dir, file, port, null, "vol", 4, qemuTls(certs.serverDir(), false));
        NbdBackend nbd = connect(
                "nbds://127.0.0.1:" + port + "/vol?tls-certificates=" + certs.caOnlyDir(),
                OPTIONS.toBuilder()
                        .reconnectAttempts(20)
                        .backoff(Duration.ofMillis(100), Duration.ofMillis(500))
                        .multiConn(false)
                        .build());
        byte[] before = new byte[65536];
        Arrays.fill(before, (byte) 0x3c);
        nbd.write(0, Unpooled.wrappedBuffer(before), true).block(WAIT);
        first.kill();
        // The restarted server takes TLS only: a reconnect in plain text would be refused.
        closing(NbdServers.qemuNbd(dir, file, port, null, "vol", 4, qemuTls(certs.serverDir(), false)));
        ByteBuf data = nbd.read(0, before.length, null).block(WAIT);
        try {
            assertArrayEquals(before, ByteBufUtil.getBytes(data));
        } finally {
            data.release();
        }
        assertEquals(1, nbd.connectionCount());
    }

    @Test
    void nbdServerWithForcedTlsServesNbdsAndRefusesPlainText() throws Exception {
        TlsCertificates certs = TlsCertificates.make(dir.resolve("tls"));
        Path file = NbdServers.exportFile(dir, "nbd-server.img", SIZE);
        int port = NbdServers.freePort();
        Path s = certs.serverDir();
        closing(NbdServers.nbdServer(
                dir,
                file,
                port,
                "disk",
                "    certfile = " + s.resolve("server-cert.pem")
                        + "\n    keyfile = " + s.resolve("server-key.pem") + "\n    cacertfile = "
                        + s.resolve("ca-cert.pem")
                        + "\n    force_tls = true\n",
                ""));
        NbdBackend nbd = connect("nbds://127.0.0.1:" + port + "/disk?tls-certificates=" + certs.clientDir(), OPTIONS);
        byte[] model = new byte[SIZE];
        try (VirtualDevice dev = VirtualDevice.serve(nbd, 2, 32)) {
            NbdTesting.mixedWritesReadBack(dev, model, 32, 3);
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
        }
        NbdTesting.fileIs(file, model);
        NbdException plain = refused("nbd://127.0.0.1:" + port + "/disk", "TLS");
        System.out.println("nbd-server with force_tls to a plain client: " + plain.getMessage());
        assertTrue(
                List.of(NbdProtocol.REP_ERR_TLS_REQD, NbdProtocol.REP_ERR_POLICY)
                                .contains(plain.replyType())
                        || plain.getMessage().contains("closed"),
                plain.getMessage());
    }
}

package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.HostileNbdServer.blockSizes;
import static dev.reactorubd.targets.nbd.HostileNbdServer.go;
import static dev.reactorubd.targets.nbd.HostileNbdServer.greet;
import static dev.reactorubd.targets.nbd.HostileNbdServer.optionReply;
import static dev.reactorubd.targets.nbd.HostileNbdServer.readOption;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import reactor.test.StepVerifier;

/**
 * Servers that try to make the client hold too much, split too much or wait forever: each attempt ends in a typed
 * error within its bound, and the handshake's buffer stays below its cap (measured).
 */
class NbdHostileServerTest extends NbdHostTest {
    /** Every wait below: far above each bound under test, far below "hangs". */
    private static final Duration BOUND = Duration.ofSeconds(10);

    private static final NbdOptions FAST = NbdOptions.builder()
            .connectTimeout(Duration.ofSeconds(2))
            .requestTimeout(Duration.ofSeconds(2))
            .noRetry()
            .build();

    private HostileNbdServer server(HostileNbdServer.Script script) throws IOException {
        return closing(new HostileNbdServer(script));
    }

    /** Connecting fails with an NbdException whose message has {@code words}, within {@link #BOUND}. */
    private NbdException refused(HostileNbdServer s, String words) {
        return refused(s.uri("nbd"), FAST, words);
    }

    private NbdException refused(String uri, NbdOptions options, String words) {
        NbdException[] seen = new NbdException[1];
        StepVerifier.create(NbdBackend.connect(uri, options))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof NbdException, "a typed error: " + e);
                    assertTrue(e.getMessage().contains(words), e.getMessage());
                    seen[0] = (NbdException) e;
                })
                .verify(BOUND);
        return seen[0];
    }

    @Test
    void anOptionReplyOfFourGibibytesIsRefusedFromItsHeader() throws Exception {
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            out.writeLong(NbdProtocol.OPTION_REPLY_MAGIC);
            out.writeInt(option);
            out.writeInt(NbdProtocol.REP_INFO);
            out.writeInt(-1); // 4 GiB - 1 of data announced
            out.write(new byte[1 << 16]);
            out.flush();
            in.read(); // until the client closes
        });
        refused(s, "option reply of 4294967295 bytes");
    }

    @Test
    void endlessLargeOptionRepliesStopAtOneMebibyteWithTheBufferBelowItsCap() throws Exception {
        Handshake.LARGEST_BUFFER.set(0);
        byte[] unknown = new byte[Handshake.MAX_OPTION_REPLY];
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            for (int i = 0; i < 10_000; i++) {
                // An unknown reply type without the error bit: the protocol says to ignore it.
                optionReply(out, option, 0x7fff, unknown);
            }
            out.flush();
        });
        refused(s, "more than " + Handshake.MAX_HANDSHAKE_BYTES + " bytes during the handshake");
        int largest = Handshake.LARGEST_BUFFER.get();
        System.out.println("largest handshake buffer with 64 KiB option replies streamed: " + largest + " bytes (cap "
                + Handshake.MAX_BUFFERED + ")");
        assertTrue(largest <= Handshake.MAX_BUFFERED, "the handshake buffer grew to " + largest);
        assertTrue(largest >= Handshake.MAX_OPTION_REPLY, "a whole 64 KiB reply was buffered: " + largest);
    }

    @Test
    void endlessSmallOptionRepliesStopAtSixtyFour() throws Exception {
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            for (int i = 0; i < 100_000; i++) {
                optionReply(out, option, 0x7fff, new byte[0]);
            }
            out.flush();
        });
        refused(s, "more than " + Handshake.MAX_OPTION_REPLIES + " option replies");
    }

    @Test
    void aServerThatGreetsAndThenSaysNothingFailsWithinTheConnectTimeout() throws Exception {
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            readOption(in);
            in.read(); // never answers
        });
        long start = System.nanoTime();
        refused(s, "timed out after PT2S");
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms < 5000, "failed after " + ms + " ms");
    }

    @Test
    void anExportOfTwoToTheSixtyThreeBytesIsRefused() throws Exception {
        refused(server(go(Long.MIN_VALUE)), "announced an export of 9223372036854775808 bytes");
        refused(server(go((1L << 62) + 4096)), "more than the 4611686018427387904 this client accepts");
        // An operator may lower the bound.
        HostileNbdServer s = server(go(2L << 30));
        refused(s.uri("nbd"), FAST.toBuilder().maxExportSize(1L << 30).build(), "NbdOptions.maxExportSize");
    }

    @Test
    void absurdBlockSizesAreRefused() throws Exception {
        refused(server(go(1 << 20, blockSizes(1, 1, 1))), "maximum block size of 1 bytes");
        refused(server(go(1 << 20, blockSizes(512, 4096, 513))), "a multiple of the minimum");
        refused(server(go(1 << 20, blockSizes(128 << 10, 128 << 10, 1 << 20))), "minimum block size of 131072");
        refused(server(go(1 << 20, blockSizes(512, 1000, 1 << 20))), "preferred block size of 1000");
        refused(server(go((1 << 20) + 1, blockSizes(4096, 4096, 1 << 20))), "not a multiple of its minimum block");
    }

    @Test
    void aMinimumBlockOfOneByteDoesNotSplitARead() throws Exception {
        AtomicInteger reads = new AtomicInteger();
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            optionReply(
                    out, option, NbdProtocol.REP_INFO, HostileNbdServer.exportInfo(8 << 20, NbdProtocol.TF_HAS_FLAGS));
            optionReply(out, option, NbdProtocol.REP_INFO, blockSizes(1, 1, 32 << 20));
            optionReply(out, option, NbdProtocol.REP_ACK, new byte[0]);
            out.flush();
            countingZeros(in, out, reads);
        });
        NbdBackend nbd = connect(s.uri("nbd"), FAST);
        assertEquals(1, nbd.minimumBlockSize());
        ByteBuf data = nbd.read(4096, 4 << 20, null).block(BOUND);
        try {
            assertEquals(4 << 20, data.readableBytes());
        } finally {
            data.release();
        }
        assertEquals(1, reads.get(), "a 4 MiB READ went as " + reads.get() + " requests");
    }

    private static void countingZeros(DataInputStream in, DataOutputStream out, AtomicInteger reads)
            throws IOException {
        while (in.readInt() == NbdProtocol.REQUEST_MAGIC) {
            in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long cookie = in.readLong();
            in.readLong();
            int length = in.readInt();
            if (type != NbdProtocol.CMD_READ) {
                return;
            }
            reads.incrementAndGet();
            out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
            out.writeInt(0);
            out.writeLong(cookie);
            out.write(new byte[length]);
            out.flush();
        }
    }

    @Test
    void aReplyThatStopsHalfWayTimesOutItsRequest() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.mode = FakeNbdServer.Mode.SCRIPTED;
        fake.replier = (sock, out, type, cookie, offset, length) -> {
            out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
            out.writeInt(0);
            out.writeLong(cookie);
            out.write(new byte[length / 2]); // and nothing more
        };
        NbdBackend nbd = connect(fake.uri(), FAST);
        long start = System.nanoTime();
        StepVerifier.create(nbd.read(0, 64 << 10, null))
                .expectErrorSatisfies(e -> {
                    assertTrue(e instanceof UbdIoException u && u.errno() == Errno.ETIMEDOUT, String.valueOf(e));
                })
                .verify(BOUND);
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms >= 1500 && ms < 5000, "the stalled READ failed after " + ms + " ms (request timeout 2 s)");
    }

    @Test
    void aReplyCutOffHalfWayFailsItsRequestAtOnce() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.mode = FakeNbdServer.Mode.SCRIPTED;
        fake.replier = (sock, out, type, cookie, offset, length) -> {
            out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
            out.writeInt(0);
            out.writeLong(cookie);
            out.write(new byte[length / 2]);
            out.flush();
            sock.close();
        };
        NbdBackend nbd = connect(fake.uri(), FAST);
        StepVerifier.create(nbd.read(0, 64 << 10, null))
                .expectErrorSatisfies(
                        e -> assertTrue(e instanceof UbdIoException u && u.errno() == Errno.EIO, String.valueOf(e)))
                .verify(BOUND);
    }

    @Test
    void aStructuredReplyOfFourGibibytesClosesTheConnectionWithoutAllocatingIt() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.mode = FakeNbdServer.Mode.SCRIPTED;
        fake.replier = (sock, out, type, cookie, offset, length) -> {
            out.writeInt(NbdProtocol.STRUCTURED_REPLY_MAGIC);
            out.writeShort(1); // NBD_REPLY_FLAG_DONE
            out.writeShort(1); // NBD_REPLY_TYPE_OFFSET_DATA
            out.writeLong(cookie);
            out.writeInt(-1); // 4 GiB - 1 of payload announced
            out.write(new byte[1 << 20]);
        };
        NbdBackend nbd = connect(fake.uri(), FAST);
        long before = PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory();
        StepVerifier.create(nbd.read(0, 4096, null))
                .expectErrorSatisfies(
                        e -> assertTrue(e instanceof UbdIoException u && u.errno() == Errno.EIO, String.valueOf(e)))
                .verify(BOUND);
        long grown = PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory() - before;
        System.out.println("direct memory of the pooled allocator after a 4 GiB structured reply was announced: "
                + (grown >> 10) + " KiB more");
        // The pool grows by whole chunks for the socket's reads at most, never by the announced length.
        assertTrue(grown <= 16 << 20, "the pool grew by " + grown + " bytes");
    }

    @Test
    void aReplyLongerThanAskedEndsTheConnection() throws Exception {
        FakeNbdServer fake = closing(new FakeNbdServer(1 << 20));
        fake.mode = FakeNbdServer.Mode.SCRIPTED;
        fake.replier = (sock, out, type, cookie, offset, length) -> {
            out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
            out.writeInt(0);
            out.writeLong(cookie);
            out.write(new byte[length + (1 << 20)]); // a MiB more than asked
        };
        NbdBackend nbd = connect(fake.uri(), FAST);
        ByteBuf first = nbd.read(0, 4096, null).block(BOUND);
        first.release();
        // The extra bytes are read as the next reply's header: not a reply, so the connection is closed, and with
        // retry off the next request fails at once rather than reading them as data.
        StepVerifier.create(nbd.read(0, 4096, null))
                .expectErrorSatisfies(
                        e -> assertTrue(e instanceof UbdIoException u && u.errno() == Errno.EIO, String.valueOf(e)))
                .verify(BOUND);
    }

    @Test
    void aServerThatRefusesStartTlsFailsTheConnectWithoutPlainText() throws Exception {
        for (int answer : new int[] {NbdProtocol.REP_ERR_POLICY, NbdProtocol.REP_ERR_UNSUP}) {
            AtomicInteger afterRefusal = new AtomicInteger();
            HostileNbdServer s = server((in, out) -> {
                greet(in, out);
                int option = readOption(in);
                assertEquals(NbdProtocol.OPT_STARTTLS, option);
                optionReply(out, option, answer, "no TLS here".getBytes());
                out.flush();
                // A client that went on in plain text would send NBD_OPT_GO now.
                if (in.read() >= 0) {
                    afterRefusal.incrementAndGet();
                }
            });
            NbdException e = refused(s.uri("nbds") + "?tls-certificates=/nonexistent", FAST, "cannot read the CA");
            assertEquals(0, s.connections.get(), "no connection without credentials: " + e.getMessage());
            Path ca = TlsCertificates.make(Files.createTempDirectory("nbd-ca-")).clientDir();
            e = refused(s.uri("nbds") + "?tls-certificates=" + ca, FAST, "refused TLS");
            assertEquals(answer, e.replyType(), e.getMessage());
            assertTrue(e.getMessage().contains("does not go on in plain text"), e.getMessage());
            assertTrue(e.getMessage().contains("server says: no TLS here"), e.getMessage());
            NbdServers.sleep(100);
            assertEquals(0, afterRefusal.get(), "the client sent more after STARTTLS was refused");
        }
    }

    @Test
    void plainTextAfterTheStartTlsAckIsRefused() throws Exception {
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            optionReply(out, option, NbdProtocol.REP_ACK, new byte[0]);
            // Injected in the same segment: an NBD_OPT_GO answer in plain text, as an attacker on the path would.
            optionReply(out, NbdProtocol.OPT_GO, NbdProtocol.REP_ACK, new byte[0]);
            out.flush();
            in.read();
        });
        Path ca = TlsCertificates.make(Files.createTempDirectory("nbd-ca-")).clientDir();
        refused(s.uri("nbds") + "?tls-certificates=" + ca, FAST, "outside TLS");
    }

    @Test
    void aServerMessageGoesIntoTheErrorPrintableAndShort() throws Exception {
        HostileNbdServer s = server((in, out) -> {
            greet(in, out);
            int option = readOption(in);
            optionReply(
                    out,
                    option,
                    NbdProtocol.REP_ERR_POLICY,
                    ("evil\n2026-12-02 ERROR forged log line\u001b[31m" + "x".repeat(3000)).getBytes());
            out.flush();
            in.read();
        });
        NbdException e = refused(s, "by its policy");
        assertTrue(!e.getMessage().contains("\n") && !e.getMessage().contains("\u001b"), e.getMessage());
        assertTrue(
                e.getMessage().length() < 1000, "a message of " + e.getMessage().length() + " characters");
    }
}

package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.Cases;
import dev.reactorubd.testing.Gen;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A server that completes the handshake and then answers with hostile data: wrong magic, unknown cookies, replies
 * twice, error codes of any value, payload after an error, truncated headers and payloads, oversized payloads, random
 * bytes, a reply cut off and never finished, no reply at all, or the connection dropped. Whatever it sends, every
 * request of {@link NbdBackend} ends within the request timeout (plus slack), either with the right data (a READ gets
 * exactly the bytes the server meant for it) or with a {@link UbdIoException} carrying an errno ({@link NbdException}
 * is one); the backend closes cleanly afterwards; and no buffer leaks (the leak check fails the class otherwise).
 */
class NbdReplyProperties {
    private static final int SIZE = 1 << 20;
    private static final Duration REQUEST_TIMEOUT = Duration.ofMillis(300);
    /**
     * A well-behaved server gets a timeout that a loaded 2-core machine cannot reach by accident (at 300 ms, one run
     * with the load above 9 timed out a benign reply); the hostile ones keep the short one, so the property stays fast.
     */
    private static final Duration BENIGN_REQUEST_TIMEOUT = Duration.ofSeconds(3);

    private static final Duration ENDS_WITHIN = BENIGN_REQUEST_TIMEOUT.plusSeconds(3);
    private static MultiThreadIoEventLoopGroup group;

    /** What the server does with one request. */
    enum Reply {
        GOOD,
        DRIBBLED,
        BAD_MAGIC,
        STRUCTURED_MAGIC,
        UNKNOWN_COOKIE,
        TWICE,
        ERROR,
        ERROR_THEN_PAYLOAD,
        HEADER_CUT_AND_CLOSED,
        PAYLOAD_CUT_AND_CLOSED,
        OVERSIZED,
        RANDOM_BYTES,
        HEADER_CUT_AND_STALLED,
        PAYLOAD_CUT_AND_STALLED,
        SILENT,
        CLOSED;

        boolean benign() {
            return this == GOOD || this == DRIBBLED || this == ERROR;
        }
    }

    /** One reply's script: the behaviour, and a number for its sizes and values (an error code, a cut, bytes). */
    record Script(Reply reply, int n) {}

    /** One request of the client. */
    record Request(int type, long offset, int length) {
        @Override
        public String toString() {
            return (type == NbdProtocol.CMD_READ ? "READ" : type == NbdProtocol.CMD_WRITE ? "WRITE" : "FLUSH") + " @"
                    + offset + "+" + length;
        }
    }

    @BeforeAll
    static void loops() {
        group = new MultiThreadIoEventLoopGroup(
                1, new DefaultThreadFactory("ubd-nbd-props", true), NioIoHandler.newFactory());
    }

    @AfterAll
    static void shutDown() {
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** One case: how the server replies, and what the client asks. */
    record Case(List<Script> scripts, List<Request> requests) {}

    @Test
    void everyRequestEndsWithItsDataOrATypedErrorWithinTheTimeout() {
        Gen<List<Script>> scripts = scripts();
        Gen<List<Request>> requests = requests();
        Cases.forAll(100, r -> new Case(scripts.next(r), requests.next(r)), c -> check(c.scripts(), c.requests()));
    }

    private void check(List<Script> scripts, List<Request> requests) {
        boolean benign = scripts.stream().allMatch(s -> s.reply().benign());
        try (FakeNbdServer server = new FakeNbdServer(SIZE)) {
            server.replier = hostile(scripts);
            server.mode = FakeNbdServer.Mode.SCRIPTED;
            NbdBackend nbd = NbdBackend.connect(
                            server.uri(),
                            NbdOptions.builder()
                                    .noRetry()
                                    .multiConn(false)
                                    .requestTimeout(benign ? BENIGN_REQUEST_TIMEOUT : REQUEST_TIMEOUT)
                                    .connectTimeout(Duration.ofSeconds(5))
                                    .eventLoopGroup(group)
                                    .build())
                    .block(Duration.ofSeconds(10));
            try {
                long t0 = System.nanoTime();
                List<String> outcomes = Flux.fromIterable(requests)
                        .flatMap(r -> outcome(nbd, r))
                        .collectList()
                        .block(ENDS_WITHIN.plusSeconds(2));
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
                assertTrue(ms < ENDS_WITHIN.toMillis(), "all ended within the timeout: " + ms + " ms");
                assertEquals(requests.size(), outcomes.size());
                if (benign) {
                    assertTrue(
                            outcomes.stream().noneMatch(o -> o.endsWith("ETIMEDOUT") || o.endsWith("Exception")),
                            "a well-behaved server's replies all arrive: " + outcomes);
                }
            } finally {
                nbd.close().block(Duration.ofSeconds(10));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** "ok", or "failed: ERRNO": what one request ended with; anything else fails the property. */
    private static Mono<String> outcome(NbdBackend nbd, Request r) {
        Mono<String> call = switch (r.type()) {
            case NbdProtocol.CMD_READ ->
                nbd.read(r.offset(), r.length(), PooledByteBufAllocator.DEFAULT).map(b -> {
                    try {
                        assertArrayEquals(
                                pattern(r.offset(), r.length()),
                                ByteBufUtil.getBytes(b),
                                r + ": a READ that succeeds has the bytes the server meant for it");
                        return "ok";
                    } finally {
                        b.release();
                    }
                });
            case NbdProtocol.CMD_WRITE ->
                nbd.write(r.offset(), Unpooled.wrappedBuffer(new byte[r.length()]), false)
                        .thenReturn("ok");
            default -> nbd.flush().thenReturn("ok");
        };
        return call.onErrorResume(e -> {
                    if (e instanceof UbdIoException u && u.errno() > 0) {
                        return Mono.just("failed: " + Errno.name(u.errno()));
                    }
                    if (e instanceof NbdException n) {
                        return Mono.just("failed: " + n.getClass().getSimpleName());
                    }
                    return Mono.error(new AssertionError(r + " failed with an untyped error", e));
                })
                .timeout(ENDS_WITHIN, Mono.fromRunnable(() -> fail(r + " did not end within " + ENDS_WITHIN)));
    }

    /** The bytes the server sends for a READ at {@code offset}. */
    private static byte[] pattern(long offset, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            long at = offset + i;
            b[i] = (byte) (at * 31 + (at >>> 8));
        }
        return b;
    }

    /** A server following {@code scripts} request by request (then answering well), on one connection. */
    private static FakeNbdServer.Replier hostile(List<Script> scripts) {
        AtomicInteger next = new AtomicInteger();
        boolean[] mute = {false};
        return (Socket s, DataOutputStream out, int type, long cookie, long offset, int length) -> {
            if (mute[0]) {
                return; // stalled mid-reply: whatever comes next would be taken as the rest of it
            }
            int i = next.getAndIncrement();
            Script script = i < scripts.size() ? scripts.get(i) : new Script(Reply.GOOD, 0);
            Random rnd = new Random(script.n());
            boolean read = type == NbdProtocol.CMD_READ;
            byte[] payload = read ? pattern(offset, length) : new byte[0];
            byte[] header = header(NbdProtocol.SIMPLE_REPLY_MAGIC, 0, cookie);
            switch (script.reply()) {
                case GOOD -> {
                    out.write(header);
                    out.write(payload);
                }
                case DRIBBLED -> {
                    byte[] all = concat(header, payload);
                    int piece = 1 + Math.floorMod(script.n(), 7);
                    for (int at = 0; at < all.length; at += piece) {
                        out.write(all, at, Math.min(piece, all.length - at));
                        out.flush();
                    }
                }
                case BAD_MAGIC -> out.write(header(rnd.nextInt() | 1, 0, cookie)); // never the simple reply's
                case STRUCTURED_MAGIC -> out.write(header(NbdProtocol.STRUCTURED_REPLY_MAGIC, 0, cookie));
                case UNKNOWN_COOKIE -> {
                    out.write(header(NbdProtocol.SIMPLE_REPLY_MAGIC, 0, cookie ^ (1L << 62)));
                    out.write(payload);
                }
                case TWICE -> {
                    out.write(header);
                    out.write(payload);
                    out.write(header);
                    out.write(payload);
                }
                case ERROR ->
                    out.write(header(NbdProtocol.SIMPLE_REPLY_MAGIC, script.n() == 0 ? 5 : script.n(), cookie));
                case ERROR_THEN_PAYLOAD -> {
                    out.write(header(NbdProtocol.SIMPLE_REPLY_MAGIC, errnoOrEio(script.n()), cookie));
                    byte[] junk = new byte[16 + Math.floorMod(script.n(), 100)];
                    rnd.nextBytes(junk);
                    junk[0] = (byte) 0x80; // not the simple reply's magic
                    out.write(junk);
                }
                case HEADER_CUT_AND_CLOSED -> {
                    out.write(header, 0, Math.floorMod(script.n(), header.length));
                    out.flush();
                    s.shutdownOutput();
                    throw new IOException("closed mid-header");
                }
                case PAYLOAD_CUT_AND_CLOSED -> {
                    out.write(header);
                    out.write(payload, 0, payload.length == 0 ? 0 : Math.floorMod(script.n(), payload.length));
                    out.flush();
                    s.shutdownOutput();
                    throw new IOException("closed mid-payload");
                }
                case OVERSIZED -> {
                    out.write(header);
                    out.write(payload);
                    byte[] extra = new byte[1 + Math.floorMod(script.n(), 70_000)];
                    rnd.nextBytes(extra);
                    extra[0] = (byte) 0x80; // not the simple reply's magic
                    out.write(extra);
                }
                case RANDOM_BYTES -> {
                    byte[] junk = new byte[1 + Math.floorMod(script.n(), 4096)];
                    rnd.nextBytes(junk);
                    junk[0] = (byte) 0x80;
                    out.write(junk);
                }
                case HEADER_CUT_AND_STALLED -> {
                    out.write(header, 0, Math.floorMod(script.n(), header.length));
                    mute[0] = true;
                }
                case PAYLOAD_CUT_AND_STALLED -> {
                    out.write(header);
                    out.write(payload, 0, payload.length == 0 ? 0 : Math.floorMod(script.n(), payload.length));
                    mute[0] = true;
                }
                case SILENT -> {}
                case CLOSED -> {
                    s.close();
                    throw new IOException("closed");
                }
            }
        };
    }

    private static int errnoOrEio(int n) {
        return n == 0 ? 5 : n;
    }

    private static byte[] header(int magic, int error, long cookie) {
        return ByteBuffer.allocate(16)
                .putInt(magic)
                .putInt(error)
                .putLong(cookie)
                .array();
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    static Gen<List<Script>> scripts() {
        Gen<Reply> replies = Gen.<Reply>weighted()
                .add(6, Gen.of(Reply.GOOD, Reply.DRIBBLED, Reply.ERROR))
                .add(4, Gen.of(Reply.class));
        Gen<Integer> numbers = Gen.oneOf(
                Gen.anyInt(),
                Gen.ints(0, 64),
                Gen.of(1, 5, 12, 22, 28, 75, 95, 108, Integer.MIN_VALUE, -1, Integer.MAX_VALUE));
        Gen<Script> script = r -> new Script(replies.next(r), numbers.next(r));
        return script.list(1, 8);
    }

    static Gen<List<Request>> requests() {
        Gen<Integer> types = Gen.<Integer>weighted()
                .value(5, NbdProtocol.CMD_READ)
                .value(3, NbdProtocol.CMD_WRITE)
                .value(1, NbdProtocol.CMD_FLUSH);
        Gen<Long> offsets = Gen.longs(0, (SIZE - 70_000) / 512).map(s -> s * 512);
        Gen<Integer> lengths = Gen.<Integer>weighted()
                .add(4, Gen.ints(1, 128).map(s -> s * 512))
                .add(1, Gen.ints(1, 70_000));
        Gen<Request> request = r -> new Request(types.next(r), offsets.next(r), lengths.next(r));
        return request.list(1, 6);
    }
}

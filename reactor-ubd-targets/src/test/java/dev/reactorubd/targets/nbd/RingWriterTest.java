package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.reactorubd.uring.LoopIo;
import dev.reactorubd.uring.RingBufferTable;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.unix.UnixChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringSocketChannel;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link RingWriter} on a real io_uring loop and a real TCP socket of this machine: buffers and registered memory go
 * out in order, byte for byte, when a small send buffer and a slow reader make registered writes fall short (the rest
 * of the chain is cancelled by the kernel and sent again from where it stopped); a peer that is gone ends it once.
 */
class RingWriterTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private MultiThreadIoEventLoopGroup loops;
    private IoEventLoop loop;
    private LoopIo io;
    private ServerSocket server;
    private Channel channel;
    private Arena arena;

    @BeforeEach
    void setUp() throws Exception {
        assumeTrue(IoUring.isAvailable(), "io_uring is not available here: " + IoUring.unavailabilityCause());
        loops = new MultiThreadIoEventLoopGroup(1, IoUringIoHandler.newFactory());
        loop = (IoEventLoop) loops.next();
        io = LoopIo.register(loop).block(WAIT);
        server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        arena = Arena.ofShared();
    }

    @AfterEach
    void tearDown() throws Exception {
        if (channel != null) {
            channel.close().syncUninterruptibly();
        }
        if (server != null) {
            server.close();
        }
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        if (arena != null) {
            arena.close();
        }
    }

    /** A client socket on the loop, with a send buffer small enough that large writes fall short. */
    private int connect() {
        // The channel does not read: only the writer acts on the socket (a read would see a reset first, and close it).
        channel = new Bootstrap()
                .group(loop)
                .channel(IoUringSocketChannel.class)
                .option(ChannelOption.SO_SNDBUF, 4096)
                .option(ChannelOption.AUTO_READ, false)
                .handler(new ChannelInboundHandlerAdapter())
                .connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()))
                .syncUninterruptibly()
                .channel();
        return ((UnixChannel) channel).fd().intValue();
    }

    private static final class NoopHandle implements IoUringIoHandle {
        @Override
        public void handle(IoRegistration registration, IoEvent ioEvent) {}

        @Override
        public void close() {}
    }

    /** Reads {@code n} bytes slowly, in small reads, so that the writer's socket fills up. */
    private CompletableFuture<byte[]> readSlowly(int n) {
        return CompletableFuture.supplyAsync(() -> {
            try (Socket s = server.accept();
                    InputStream in = s.getInputStream()) {
                s.setReceiveBufferSize(4096);
                ByteArrayOutputStream got = new ByteArrayOutputStream();
                byte[] b = new byte[2048];
                while (got.size() < n) {
                    int r = in.read(b, 0, Math.min(b.length, n - got.size()));
                    if (r < 0) {
                        break;
                    }
                    got.write(b, 0, r);
                    Thread.sleep(0, 200_000);
                }
                return got.toByteArray();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
    }

    @Test
    void buffersAndRegisteredMemoryGoOutInOrderThroughShortWrites() throws Exception {
        int fd = connect();
        int pieces = 24;
        int slice = 48 * 1024;
        MemorySegment memory = arena.allocate((long) pieces * slice, 4096);
        for (long i = 0; i < memory.byteSize(); i++) {
            memory.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + 7));
        }
        IoRegistration reg = loop.register(new NoopHandle()).get(10, TimeUnit.SECONDS);
        RingBufferTable.Reservation slots =
                loop.submit(() -> RingBufferTable.reserve(reg, 1)).get(10, TimeUnit.SECONDS);
        loop.submit(() -> slots.register(0, memory)).get(10, TimeUnit.SECONDS); // a single-issuer ring: on the loop
        int total = pieces * (16 + slice);
        CompletableFuture<byte[]> received = readSlowly(total);
        AtomicReference<String> failure = new AtomicReference<>();
        CompletableFuture<Void> allSent = new CompletableFuture<>();
        RingWriter[] writer = new RingWriter[1];
        loop.submit(() -> {
                    RingWriter w = writer[0] = new RingWriter(io, fd, failure::set);
                    for (int i = 0; i < pieces; i++) {
                        ByteBuf header = PooledByteBufAllocator.DEFAULT
                                .directBuffer(16)
                                .writeLong(0x6e62640000000000L | i)
                                .writeLong(i);
                        w.write(header, null);
                        // Memory of the application's is addressed by its address (a ublk request's pages, from 0).
                        w.writeRegistered(slots.base(), memory.address() + (long) i * slice, slice);
                    }
                    ByteBuf last = PooledByteBufAllocator.DEFAULT.directBuffer(0);
                    w.write(last, null); // empty: dropped at once
                })
                .get(10, TimeUnit.SECONDS);
        byte[] got;
        try {
            got = received.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("not everything arrived; the writer failed with " + failure.get(), e);
        }
        byte[] expected = new byte[total];
        for (int i = 0, at = 0; i < pieces; i++) {
            ByteBuf h = Unpooled.buffer(16).writeLong(0x6e62640000000000L | i).writeLong(i);
            h.readBytes(expected, at, 16);
            at += 16;
            MemorySegment.copy(memory, ValueLayout.JAVA_BYTE, (long) i * slice, expected, at, slice);
            at += slice;
        }
        assertEquals(total, got.length);
        assertTrue(Arrays.equals(expected, got), "the bytes arrived in order, every one");
        assertNull(failure.get());
        long resent = loop.submit(() -> writer[0].resentCount()).get(10, TimeUnit.SECONDS);
        assertTrue(resent > 0, "registered writes fell short and the rest went again (" + resent + " pieces)");
        assertTrue(loop.submit(() -> writer[0].isIdle()).get(10, TimeUnit.SECONDS));
        allSent.complete(null);
        loop.submit(() -> {
                    writer[0].closeWithIo();
                    slots.release();
                })
                .get(10, TimeUnit.SECONDS);
    }

    @Test
    void aPeerThatIsGoneEndsTheWriterOnceWithTheReason() throws Exception {
        int fd = connect();
        try (Socket s = server.accept()) {
            s.setSoLinger(true, 0); // closing resets the connection
        }
        CompletableFuture<String> failure = new CompletableFuture<>();
        int[] calls = new int[1];
        loop.submit(() -> {
                    RingWriter w = new RingWriter(io, fd, reason -> {
                        calls[0]++;
                        failure.complete(reason);
                    });
                    for (int i = 0; i < 64; i++) {
                        w.write(
                                PooledByteBufAllocator.DEFAULT
                                        .directBuffer(65536)
                                        .writeZero(65536),
                                null);
                    }
                })
                .get(10, TimeUnit.SECONDS);
        String reason = failure.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        // ECONNRESET or EPIPE from the socket; EBADF if the channel saw the reset first and closed it.
        assertTrue(reason.contains("ECONNRESET") || reason.contains("EPIPE") || reason.contains("EBADF"), reason);
        Thread.sleep(200);
        assertEquals(1, loop.submit(() -> calls[0]).get(10, TimeUnit.SECONDS));
    }
}

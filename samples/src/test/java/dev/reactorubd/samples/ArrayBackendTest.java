package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/** The examples of docs/backends.md, run: a backend written from scratch, tested through the test kit, composed. */
class ArrayBackendTest {

    /** A RAM disk in one array: the smallest complete backend. */
    static final class ArrayBackend implements BlockBackend {
        private final byte[] bytes;

        ArrayBackend(int size) {
            this.bytes = new byte[size];
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return Mono.fromSupplier(() -> {
                ByteBuf buf = allocator.directBuffer(length, length); // ownership passes to the library
                synchronized (bytes) {
                    buf.writeBytes(bytes, (int) offset, length);
                }
                return buf;
            });
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            if (offset + data.readableBytes() > bytes.length) { // fails this request alone, with ENOSPC
                return Mono.error(new UbdIoException(Errno.ENOSPC, "write past the end"));
            }
            return Mono.fromRunnable(() -> {
                synchronized (bytes) { // data is valid until the Mono ends:
                    data.getBytes(data.readerIndex(), bytes, (int) offset, data.readableBytes()); // copied, not kept
                }
            });
        }

        @Override
        public Mono<Void> discard(long offset, long length) {
            return Mono.fromRunnable(() -> {
                synchronized (bytes) {
                    Arrays.fill(bytes, (int) offset, (int) (offset + length), (byte) 0);
                }
            });
        }

        @Override
        public Set<Capability> capabilities() {
            return EnumSet.of(Capability.DISCARD); // the kernel will send DISCARD too
        }

        @Override
        public long size() {
            return bytes.length;
        }
    }

    private static ByteBuf text(String s) {
        return Unpooled.copiedBuffer(s, StandardCharsets.US_ASCII);
    }

    @Test
    void writeThenReadBackThroughTheTestKit() {
        try (VirtualDevice dev = VirtualDevice.serve(new ArrayBackend(1 << 20), 2, 16)) {
            StepVerifier.create(dev.write(0, 4096, text("hello, block device"))
                            .then(dev.read(1, 4096, 19))) // written through queue 0, read through 1
                    .assertNext(buf -> {
                        assertEquals("hello, block device", buf.toString(StandardCharsets.US_ASCII));
                        buf.release(); // the caller owns what read() signals
                    })
                    .verifyComplete();
            StepVerifier.create(dev.discard(0, 4096, 4096).then(dev.read(0, 4096, 4)))
                    .assertNext(buf -> {
                        assertEquals("00000000", ByteBufUtil.hexDump(buf));
                        buf.release();
                    })
                    .verifyComplete();
        }
    }

    @Test
    void anErrorFailsThatRequestAloneWithItsErrno() {
        try (VirtualDevice dev = VirtualDevice.serve(new ArrayBackend(8192), 1, 4)) {
            StepVerifier.create(dev.write(0, 8192, text("too far")))
                    .expectErrorSatisfies(e -> assertEquals(Errno.ENOSPC, ((UbdIoException) e).errno()))
                    .verify(Duration.ofSeconds(10));
            StepVerifier.create(dev.write(0, 0, text("still fine"))).verifyComplete();
        }
    }

    @Test
    void composedBackendsAreBackendsToo() {
        MirrorBackend mirror = Backends.mirror(new ArrayBackend(1 << 20), new MemoryBackend(1 << 20));
        BlockBackend device =
                mirror.cache(256 << 10).timeout(Duration.ofSeconds(5)).retry(3, Duration.ofMillis(10));
        try (VirtualDevice dev = VirtualDevice.serve(device, 2, 16)) {
            StepVerifier.create(dev.write(0, 0, text("on both replicas")).then(dev.read(1, 0, 16)))
                    .assertNext(buf -> {
                        assertEquals("on both replicas", buf.toString(StandardCharsets.US_ASCII));
                        buf.release();
                    })
                    .verifyComplete();
        }
        StepVerifier.create(mirror.replicas().get(1).read(0, 16, ByteBufAllocator.DEFAULT)) // the MemoryBackend
                .assertNext(buf -> {
                    assertEquals("on both replicas", buf.toString(StandardCharsets.US_ASCII));
                    buf.release();
                })
                .verifyComplete();
        device.close().block(Duration.ofSeconds(10)); // a composite closes its parts
    }
}

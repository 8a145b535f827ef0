package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import reactor.core.publisher.Flux;

/** Shared steps of the NBD tests. */
final class NbdTesting {
    static final Duration WAIT = Duration.ofSeconds(30);
    static final int SLOT = 128 * 1024;

    private NbdTesting() {}

    static byte[] read(VirtualDevice dev, int q, long offset, int length) {
        ByteBuf buf = dev.read(q, offset, length).block(WAIT);
        try {
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    /**
     * Writes of mixed sizes (512 B to 128 KiB) at random 512-aligned offsets, {@code count} of them in flight up to
     * 32 at a time through both queues, never two over one 128 KiB slot; records them in {@code model} and checks that
     * each reads back.
     */
    static void mixedWritesReadBack(VirtualDevice dev, byte[] model, int count, long seed) {
        Random rnd = new Random(seed);
        int slots = model.length / SLOT;
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < slots; i++) {
            order.add(i);
        }
        Collections.shuffle(order, rnd);
        record W(int q, int offset, byte[] data) {}
        List<W> writes = new ArrayList<>();
        for (int i = 0; i < Math.min(count, slots); i++) {
            int length = 512 * (1 + rnd.nextInt(SLOT / 512));
            int offset = order.get(i) * SLOT + 512 * rnd.nextInt((SLOT - length) / 512 + 1);
            byte[] data = new byte[length];
            rnd.nextBytes(data);
            System.arraycopy(data, 0, model, offset, length);
            writes.add(new W(i % 2, offset, data));
        }
        Flux.fromIterable(writes)
                .flatMap(w -> dev.write(w.q, w.offset, Unpooled.wrappedBuffer(w.data)), 32)
                .then()
                .block(WAIT);
        Flux.fromIterable(writes)
                .flatMap(
                        w -> dev.read(1 - w.q, w.offset, w.data.length).map(b -> {
                            try {
                                assertArrayEquals(w.data, ByteBufUtil.getBytes(b), "data at " + w.offset);
                                return b.readableBytes();
                            } finally {
                                b.release();
                            }
                        }),
                        32)
                .then()
                .block(WAIT);
    }

    /** Reads the whole device in 1 MiB pieces and compares it with the model. */
    static void wholeDeviceIs(VirtualDevice dev, byte[] model) {
        int piece = 1 << 20;
        for (int at = 0; at < model.length; at += piece) {
            byte[] expected = Arrays.copyOfRange(model, at, Math.min(model.length, at + piece));
            assertArrayEquals(expected, read(dev, (at / piece) % 2, at, expected.length), "device bytes at " + at);
        }
    }

    /** The server's file holds the model. */
    static void fileIs(Path file, byte[] model) throws IOException {
        byte[] onDisk = Files.readAllBytes(file);
        assertArrayEquals(model, Arrays.copyOf(onDisk, model.length), "the export's file");
    }
}

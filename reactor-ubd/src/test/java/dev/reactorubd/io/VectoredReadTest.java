package dev.reactorubd.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.IoOp;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;

/**
 * A READ answered in pieces (a composite buffer, as striping backends answer) is copied from its pieces in order, and
 * every piece is released once the copy is done, also when the copy finishes the request before it returns (the
 * kernel transport's pwritev does).
 */
class VectoredReadTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    /** Answers each read with 4 direct pieces; piece i holds the byte 'a' + i. */
    static final class Pieces implements BlockBackend {
        final List<ByteBuf> made = new CopyOnWriteArrayList<>();

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            CompositeByteBuf all = PooledByteBufAllocator.DEFAULT.compositeDirectBuffer(4);
            for (int i = 0; i < 4; i++) {
                ByteBuf piece = PooledByteBufAllocator.DEFAULT.directBuffer(length / 4);
                for (int j = 0; j < length / 4; j++) {
                    piece.writeByte('a' + i);
                }
                made.add(piece);
                all.addComponent(true, piece);
            }
            return Mono.just(all);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return Mono.empty();
        }
    }

    @Test
    void aReadInPiecesArrivesInOrderAndEveryPieceIsReleased() {
        Pieces backend = new Pieces();
        try (VirtualDevice dev = VirtualDevice.serve(backend, 1, 8)) {
            for (int n = 0; n < 20; n++) {
                ByteBuf got = dev.read(0, 8192L * n, 8192).block(WAIT);
                try {
                    assertEquals(8192, got.readableBytes());
                    for (int i = 0; i < 4; i++) {
                        assertEquals('a' + i, got.getByte(i * 2048), "piece " + i);
                        assertEquals('a' + i, got.getByte(i * 2048 + 2047), "piece " + i);
                    }
                } finally {
                    got.release();
                }
            }
            assertEquals(0L, dev.load(0, IoOp.READ, 4096, 1 << 20, 200).block(WAIT));
            assertEquals(220, dev.queue(0).completedCount());
        }
        assertEquals(4 * 220, backend.made.size());
        assertTrue(backend.made.stream().allMatch(b -> b.refCnt() == 0), "every piece was released");
    }
}

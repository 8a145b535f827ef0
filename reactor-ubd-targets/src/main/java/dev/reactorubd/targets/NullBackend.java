package dev.reactorubd.targets;

import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.util.EnumSet;
import java.util.Set;
import reactor.core.publisher.Mono;

/**
 * A device that stores nothing, like {@code null_blk}: reads return zeros, writes, flushes, discards and
 * write-zeroes complete at once. Reads are served from one shared zeroed buffer, so no memory is allocated per
 * request; the cost of this backend is the library's own, which makes it the baseline for benchmarks.
 *
 */
public final class NullBackend implements BlockBackend {
    private static final int ZEROS = 1 << 20;
    /** One zeroed buffer for every instance: allocated once, never released (nor reported as leaked). */
    // From the pooled allocator: on JDK 25, where Netty does without sun.misc.Unsafe, its pooled direct buffers
    // still know their native address and Unpooled's do not, and the queue's copy would then have to ask NIO for
    // it, which allocates on every read.
    private static final ByteBuf ZERO_BUFFER = Unpooled.unreleasableBuffer(
            PooledByteBufAllocator.DEFAULT.directBuffer(ZEROS, ZEROS).writeZero(ZEROS));

    private final ByteBuf zeros = ZERO_BUFFER;

    /** A null backend; the zero buffer is shared by all reads of all instances, so one can serve many devices. */
    public NullBackend() {}

    private static final int SECTOR = 512;
    /**
     * One ready answer per read length in sectors, made on first use: a read then allocates nothing. The slices are
     * unreleasable, so the queue's release after the copy leaves them whole for the next read.
     */
    @SuppressWarnings("unchecked")
    private static final Mono<ByteBuf>[] ZERO_READS = new Mono[ZEROS / SECTOR + 1];

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        if (length <= ZEROS && length % SECTOR == 0) {
            Mono<ByteBuf> ready = ZERO_READS[length / SECTOR];
            if (ready == null) {
                // A race makes two equal Monos, one of which is kept: harmless.
                ready = Mono.just(Unpooled.unreleasableBuffer(zeros.slice(0, length)));
                ZERO_READS[length / SECTOR] = ready;
            }
            return ready;
        }
        if (length <= ZEROS) {
            return Mono.just(zeros.retainedSlice(0, length));
        }
        return Mono.fromSupplier(() -> allocator.directBuffer(length, length).writeZero(length));
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return Mono.empty();
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return Mono.empty();
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return Mono.empty();
    }

    @Override
    public Set<Capability> capabilities() {
        return EnumSet.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD, Capability.WRITE_ZEROES);
    }

    @Override
    public String toString() {
        return "null";
    }
}

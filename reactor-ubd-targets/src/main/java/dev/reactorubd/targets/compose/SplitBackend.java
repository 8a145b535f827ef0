package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.Layout.Piece;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.util.ReferenceCountUtil;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import reactor.core.publisher.Mono;

/**
 * What stripe and concat share: a request is split into pieces by a {@link Layout}, each piece goes to its part, all
 * pieces at once; the request completes when every piece has terminated (so a write's buffer outlives every piece),
 * with the first piece's error if any. A read's pieces are reassembled in order into one composite buffer (the
 * library gathers non-contiguous read data into a direct buffer itself); a request within one piece goes straight
 * to its part. FLUSH goes to every part that has FLUSH.
 */
abstract class SplitBackend extends ComposableBackend {
    final BlockBackend[] parts;
    final Layout layout;
    final long size;
    final Set<Capability> capabilities;
    final AtomicBoolean closed;

    SplitBackend(BlockBackend[] parts, Layout layout, long size, AtomicBoolean closed) {
        this.parts = parts;
        this.layout = layout;
        this.size = size;
        this.capabilities = Support.combined(parts);
        this.closed = closed;
    }

    /** The same composite over {@code bound} parts (a queue's view). */
    abstract SplitBackend withParts(BlockBackend[] bound);

    @Override
    public final Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        Mono<ByteBuf> bad = Support.outOfRange(size, offset, length, this);
        if (bad != null) {
            return bad;
        }
        List<Piece> pieces = layout.split(offset, length);
        if (pieces.size() == 1) {
            Piece p = pieces.getFirst();
            return Support.call(() -> parts[p.part()].read(p.partOffset(), length, allocator));
        }
        Mono<?>[] reads = new Mono<?>[pieces.size()];
        for (int i = 0; i < reads.length; i++) {
            Piece p = pieces.get(i);
            reads[i] = Support.<ByteBuf>call(() -> parts[p.part()].read(p.partOffset(), (int) p.length(), allocator));
        }
        return Join.all(reads).flatMap(bufs -> assemble(bufs, pieces, allocator));
    }

    private Mono<ByteBuf> assemble(Object[] bufs, List<Piece> pieces, ByteBufAllocator allocator) {
        for (int i = 0; i < bufs.length; i++) {
            if (!(bufs[i] instanceof ByteBuf b)
                    || b.readableBytes() != pieces.get(i).length()) {
                for (Object o : bufs) {
                    ReferenceCountUtil.release(o);
                }
                Piece p = pieces.get(i);
                return Mono.error(Support.ioError(
                        Errno.EIO,
                        parts[p.part()] + " answered a read of " + p.length() + " bytes with "
                                + (bufs[i] instanceof ByteBuf b ? b.readableBytes() + " bytes" : "nothing")));
            }
        }
        CompositeByteBuf out = allocator.compositeDirectBuffer(bufs.length);
        for (Object b : bufs) {
            out.addComponent(true, (ByteBuf) b);
        }
        return Mono.just(out);
    }

    @Override
    public final Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        int length = data.readableBytes();
        Mono<Void> bad = Support.outOfRange(size, offset, length, this);
        if (bad != null) {
            return bad;
        }
        List<Piece> pieces = layout.split(offset, length);
        if (pieces.size() == 1) {
            Piece p = pieces.getFirst();
            return Support.call(() -> parts[p.part()].write(p.partOffset(), data, fua));
        }
        int from = data.readerIndex();
        return each(
                pieces,
                p -> parts[p.part()].write(p.partOffset(), data.slice(from + (int) p.at(), (int) p.length()), fua));
    }

    @Override
    public final Mono<Void> discard(long offset, long length) {
        Mono<Void> bad = check(offset, length, Capability.DISCARD);
        return bad != null
                ? bad
                : each(layout.split(offset, length), p -> parts[p.part()].discard(p.partOffset(), p.length()));
    }

    @Override
    public final Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        Mono<Void> bad = check(offset, length, Capability.WRITE_ZEROES);
        return bad != null
                ? bad
                : each(
                        layout.split(offset, length),
                        p -> parts[p.part()].writeZeroes(p.partOffset(), p.length(), noUnmap));
    }

    @Override
    public final Mono<Void> flush() {
        return Join.all(Arrays.stream(parts)
                        .filter(Support::hasFlush)
                        .map(p -> Support.<Void>call(p::flush))
                        .toArray(Mono<?>[]::new))
                .then();
    }

    private Mono<Void> check(long offset, long length, Capability c) {
        Mono<Void> bad = Support.unsupported(capabilities, c, this);
        return bad != null ? bad : Support.outOfRange(size, offset, length, this);
    }

    private static Mono<Void> each(List<Piece> pieces, Function<Piece, Mono<Void>> op) {
        Mono<?>[] ops = new Mono<?>[pieces.size()];
        for (int i = 0; i < ops.length; i++) {
            Piece p = pieces.get(i);
            ops[i] = Support.call(() -> op.apply(p));
        }
        return Join.all(ops).then();
    }

    @Override
    public final Mono<BlockBackend> bind(UbdQueue queue) {
        return Support.bindAll(parts, queue).map(this::withParts);
    }

    @Override
    public final Set<Capability> capabilities() {
        return capabilities;
    }

    @Override
    public final ByteBufAllocator allocator() {
        return parts[0].allocator();
    }

    @Override
    public final long size() {
        return size;
    }

    /** Closes every part (once; later calls complete at once). */
    @Override
    public final Mono<Void> close() {
        return Mono.defer(() -> closed.compareAndSet(false, true) ? Support.closeAll(parts) : Mono.empty());
    }

    /** {@return the parts, in order (the bound ones for a queue's view)} */
    public final List<BlockBackend> parts() {
        return List.of(parts);
    }
}

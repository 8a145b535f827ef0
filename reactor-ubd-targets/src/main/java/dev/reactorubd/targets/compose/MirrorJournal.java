package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import io.netty.buffer.ByteBuf;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Queue;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * A persistent mirror's metadata on its replicas: the superblocks and the write-intent bitmap (docs/mirror.md).
 *
 * <h2>Bitmap</h2>
 * {@link #markDirty} is called by every modifying request before it goes to any replica: when every region it touches
 * already has its bit on disk it returns null (no cost), else it sets the bits in memory and returns a Mono that
 * completes once the bitmap pages holding them are durable (written FUA, or written and flushed) on every replica that
 * is not FAILED. Bits are cleared lazily: every {@code clearDelay} the set bits with no write in flight are noted;
 * at the next tick, after a flush of every replica, those not written since are cleared and their pages written, but
 * only while every replica is IN_SYNC, so a replica that is out always finds every region it missed in the others'
 * bitmaps.
 *
 * <h2>Superblocks</h2>
 * {@link #requestSuperblock} (on every state change) bumps the event counter and writes every non-FAILED replica's
 * superblock with every slot's role; {@link #superblockBarrier} lets a write that skipped or lost a replica wait until
 * that change is durable, so that no acknowledged write depends on a failure the superblocks do not know of yet.
 *
 * <h2>Threads</h2>
 * Callable from any thread, without locks. All metadata IO is done in rounds, one at a time (a work-in-progress
 * counter), on whatever thread the replicas complete on; a round batches every bitmap page and superblock change asked
 * for since the last one. A metadata write that fails on a replica fails that replica (through the host).
 */
final class MirrorJournal {
    private static final Logger log = LoggerFactory.getLogger(MirrorJournal.class);
    static final int PAGE = Superblock.BYTES;
    private static final long BITS_PER_PAGE = PAGE * 8L;

    /** What the journal needs of its mirror. */
    interface Host {
        /**
         * The replica in slot {@code r} if it gets metadata writes (it is not FAILED), counted in flight until {@link
         * MirrorBackend.Member#exit()}; null when it does not.
         */
        MirrorBackend.Member enterWritable(int r);

        /** Whether every replica is IN_SYNC. */
        boolean allInSync();

        /** Replica {@code r}'s role for its superblock. */
        byte role(int r);

        /** Slot {@code r}'s member id for the superblocks. */
        long memberId(int r);

        /**
         * Marks replica {@code m} FAILED after a metadata write (or a flush, {@code full}: what it cached may be lost)
         * failed on it; nothing when it has left its slot since.
         */
        void metadataFailed(MirrorBackend.Member m, boolean full, String reason);

        /** The region's write generation, or -1 while a write of it is in flight (see {@link Generations}). */
        long generation(long region);

        /** Whether no write of the region began or ended since {@code generation}. */
        boolean unchanged(long region, long generation);
    }

    private record Waiter(long first, long last, Sinks.Empty<Void> done) {}

    private record SbWaiter(long need, Sinks.Empty<Void> done) {}

    private final Host host;
    private final int slots;
    private final Superblock base;
    private final DirtyMap want;
    private final DirtyMap durable;
    private final Queue<Waiter> waiters = new ConcurrentLinkedQueue<>();
    private final Queue<SbWaiter> sbWaiters = new ConcurrentLinkedQueue<>();
    private final AtomicInteger wip = new AtomicInteger();
    private final AtomicLong sbRequested = new AtomicLong();
    private final AtomicLong sbDone = new AtomicLong();
    private final AtomicLong bitmapWrites = new AtomicLong();
    private final Sinks.Empty<Void> closed = Sinks.empty();
    private final Duration clearDelay;
    /** Only touched by rounds (one at a time). */
    private long events;

    private long[] candidates = new long[0];
    private long[] candidateGenerations = new long[0];
    private volatile boolean clearRequested;
    private volatile boolean closeRequested;
    private volatile boolean fullBitmapRequested;
    private volatile Disposable timer;
    /** Set by the close round: nothing is written afterwards (the replicas are being closed). */
    private volatile boolean finished;

    MirrorJournal(Host host, int slots, Superblock base, long events, DirtyMap initial, Duration clearDelay) {
        this.host = host;
        this.slots = slots;
        this.base = base;
        this.events = events;
        this.want = new DirtyMap(initial.size());
        this.durable = new DirtyMap(initial.size());
        for (long b = initial.next(0); b >= 0; b = initial.next(b + 1)) {
            want.mark(b, b);
            durable.mark(b, b);
        }
        this.clearDelay = clearDelay;
    }

    /**
     * Writes every superblock and the whole bitmap (a replica that joins gets the others' bits), then starts the
     * periodic clearing.
     */
    Mono<Void> start() {
        fullBitmapRequested = true;
        Mono<Void> sb = requestSuperblockAndWait();
        return sb.doOnSuccess(v -> {
            long ms = clearDelay.toMillis();
            timer = Schedulers.parallel().schedulePeriodically(this::tick, ms, ms, TimeUnit.MILLISECONDS);
        });
    }

    long events() {
        return events;
    }

    long dirtyBits() {
        return want.count();
    }

    long bitmapWrites() {
        return bitmapWrites.get();
    }

    /** The regions marked on disk, for a stale replica's resync. */
    void copyInto(DirtyMap target) {
        for (long b = want.next(0); b >= 0; b = want.next(b + 1)) {
            target.mark(b, b);
        }
    }

    /**
     * Makes sure regions {@code first..last} have their bits on disk before the caller writes their data.
     *
     * @return null when they already do, else a Mono that completes once they are durable (or fails with EIO when no
     *         replica took them)
     */
    Mono<Void> markDirty(long first, long last) {
        long end = Math.min(last, durable.size() - 1);
        boolean all = true;
        for (long b = first; b <= end; b++) {
            if (!durable.isSet(b)) {
                all = false;
                break;
            }
        }
        if (all) {
            return null;
        }
        want.mark(first, end);
        Waiter w = new Waiter(first, end, Sinks.empty());
        waiters.add(w);
        kick();
        return w.done.asMono();
    }

    /**
     * A replica is back in sync: the next round writes the whole bitmap to every replica, so that the pages it missed
     * while it was out are on it too.
     */
    void rewriteBitmap() {
        fullBitmapRequested = true;
        kick();
    }

    /** A state changed: the next round writes every non-FAILED replica's superblock. */
    void requestSuperblock() {
        sbRequested.incrementAndGet();
        kick();
    }

    private Mono<Void> requestSuperblockAndWait() {
        requestSuperblock();
        return superblockBarrier();
    }

    /** {@return a Mono that completes once every superblock change asked for so far is on disk} */
    Mono<Void> superblockBarrier() {
        long need = sbRequested.get();
        if (sbDone.get() >= need) {
            return Mono.empty();
        }
        SbWaiter w = new SbWaiter(need, Sinks.empty());
        sbWaiters.add(w);
        kick();
        // A round that finished between the check and the add would not see the waiter: release it here then.
        if (sbDone.get() >= need) {
            w.done.tryEmitEmpty();
        }
        return w.done.asMono();
    }

    /**
     * Stops the clearing, clears what can be cleared and writes superblocks marked clean.
     *
     * @return a Mono that completes when that is on disk
     */
    Mono<Void> close() {
        Disposable t = timer;
        if (t != null) {
            t.dispose();
        }
        closeRequested = true;
        requestSuperblock();
        return closed.asMono();
    }

    private void tick() {
        if (want.count() > 0 || candidates.length > 0) {
            clearRequested = true;
            kick();
        }
    }

    private void kick() {
        if (wip.getAndIncrement() == 0) {
            round();
        }
    }

    private void roundDone() {
        if (wip.decrementAndGet() > 0) {
            wip.set(1);
            // Not straight away: a replica that completes synchronously would recurse here round after round.
            Schedulers.parallel().schedule(this::round);
        }
    }

    /** One batch of metadata IO: clearing, then superblocks, then the bitmap pages that waiters need. */
    private void round() {
        if (finished) {
            waiters.forEach(w -> w.done.tryEmitError(Support.ioError(Errno.ECANCELED, "the mirror is closed")));
            waiters.clear();
            sbWaiters.forEach(w -> w.done.tryEmitEmpty());
            sbWaiters.clear();
            roundDone();
            return;
        }
        boolean closing = closeRequested;
        boolean doClear = clearRequested || closing;
        clearRequested = false;
        long sbWant = sbRequested.get();
        boolean doSb = sbWant > sbDone.get();
        boolean fullBitmap = fullBitmapRequested;
        fullBitmapRequested = false;
        List<Waiter> batch = new ArrayList<>();
        for (Waiter w; (w = waiters.poll()) != null; ) {
            batch.add(w);
        }
        if (!doClear && !doSb && batch.isEmpty() && !fullBitmap) {
            roundDone();
            return;
        }
        TreeSet<Long> pages = new TreeSet<>();
        if (fullBitmap) {
            long n = (want.size() + BITS_PER_PAGE - 1) / BITS_PER_PAGE;
            for (long p = 0; p < n; p++) {
                pages.add(p);
            }
        }
        for (Waiter w : batch) {
            for (long p = w.first / BITS_PER_PAGE; p <= w.last / BITS_PER_PAGE; p++) {
                pages.add(p);
            }
        }
        Mono<Void> work = (doClear ? clear(closing, pages) : Mono.<Void>empty())
                .then(Mono.defer(() -> doSb ? writeSuperblocks(closing && doSb) : Mono.empty()))
                .then(Mono.defer(() -> writePages(pages)));
        work.subscribe(
                null,
                e -> {
                    log.warn(
                            "mirror {}: metadata write failed on every replica: {}",
                            base.mirrorId(),
                            Support.describe(e));
                    finish(batch, sbWant, doSb, closing, e);
                },
                () -> finish(batch, sbWant, doSb, closing, null));
    }

    private void finish(List<Waiter> batch, long sbWant, boolean doSb, boolean closing, Throwable error) {
        for (Waiter w : batch) {
            if (error == null) {
                durable.mark(w.first, w.last);
                w.done.tryEmitEmpty();
            } else {
                w.done.tryEmitError(Support.ioError(
                        Errno.EIO, "the write-intent bitmap reached no replica: " + Support.describe(error)));
            }
        }
        if (doSb) {
            sbDone.accumulateAndGet(sbWant, Math::max);
            long done = sbDone.get();
            for (SbWaiter w : List.copyOf(sbWaiters)) {
                if (w.need <= done) {
                    sbWaiters.remove(w);
                    w.done.tryEmitEmpty();
                }
            }
        }
        if (closing) {
            finished = true;
            if (error == null) {
                closed.tryEmitEmpty();
            } else {
                closed.tryEmitError(error);
            }
        }
        roundDone();
    }

    /**
     * Clears the bits noted at the last tick that were not written since, after a flush of every replica; notes the
     * bits to clear at the next tick. On close, clears every bit with no write in flight at once.
     */
    private Mono<Void> clear(boolean now, TreeSet<Long> pages) {
        if (!host.allInSync()) {
            candidates = new long[0];
            return Mono.empty();
        }
        long[] prevBits = candidates;
        long[] prevGens = candidateGenerations;
        List<long[]> noted = note();
        if (now) {
            prevBits = noted.get(0);
            prevGens = noted.get(1);
            candidates = new long[0];
            candidateGenerations = new long[0];
        } else {
            candidates = noted.get(0);
            candidateGenerations = noted.get(1);
        }
        if (prevBits.length == 0) {
            return Mono.empty();
        }
        long[] bits = prevBits;
        long[] gens = prevGens;
        return flushAll().then(Mono.fromRunnable(() -> {
            if (!host.allInSync()) {
                return;
            }
            long cleared = 0;
            for (int i = 0; i < bits.length; i++) {
                long b = bits[i];
                // Cleared first, then checked: a write that began meanwhile either sees the bit clear (and sets it
                // again, waiting for the page) or is seen here (and the bit is put back before the page is written).
                durable.clear(b);
                want.clear(b);
                if (!host.unchanged(b, gens[i])) {
                    want.mark(b, b);
                } else {
                    cleared++;
                }
                pages.add(b / BITS_PER_PAGE);
            }
            log.debug("mirror {}: {} bitmap regions cleared", base.mirrorId(), cleared);
        }));
    }

    private List<long[]> note() {
        int count = (int) Math.min(want.count(), 1 << 20);
        long[] bits = new long[count];
        long[] gens = new long[count];
        int k = 0;
        for (long b = want.next(0); b >= 0 && k < count; b = want.next(b + 1)) {
            long g = host.generation(b);
            if (g >= 0) {
                bits[k] = b;
                gens[k++] = g;
            }
        }
        return List.of(Arrays.copyOf(bits, k), Arrays.copyOf(gens, k));
    }

    private Mono<Void> flushAll() {
        return Flux.range(0, slots)
                .flatMap(r -> {
                    MirrorBackend.Member m = host.enterWritable(r);
                    if (m == null) {
                        return Mono.empty();
                    }
                    if (!Support.hasFlush(m.backend)) {
                        m.exit();
                        return Mono.empty();
                    }
                    return Support.<Void>call(m.backend::flush)
                            .onErrorResume(e -> {
                                host.metadataFailed(
                                        m, true, "flush before clearing the bitmap failed: " + Support.describe(e));
                                return Mono.empty();
                            })
                            .doFinally(sig -> m.exit());
                })
                .then();
    }

    private Mono<Void> writeSuperblocks(boolean clean) {
        events++;
        byte[] roles = new byte[slots];
        long[] members = new long[slots];
        for (int r = 0; r < slots; r++) {
            roles[r] = host.role(r);
            members[r] = host.memberId(r);
        }
        long e = events;
        return onEveryWritable("superblock (events " + e + ")", (r, b) -> {
            byte[] raw = base.withEvents(e, clean, roles, members, r).encode();
            // Copy 0, then copy 1: a write torn by a crash damages one copy at most.
            return durableWrite(b, Superblock.COPY_OFFSETS[0], raw)
                    .then(Mono.defer(() -> durableWrite(b, Superblock.COPY_OFFSETS[1], raw)));
        });
    }

    private Mono<Void> writePages(TreeSet<Long> pages) {
        if (pages.isEmpty()) {
            return Mono.empty();
        }
        List<Long> list = List.copyOf(pages);
        // The pages' contents are taken now, after every bit of this round was set or cleared.
        List<byte[]> images = new ArrayList<>(list.size());
        for (long p : list) {
            images.add(page(p));
        }
        bitmapWrites.addAndGet(list.size());
        return onEveryWritable(
                "bitmap",
                (r, b) -> Flux.range(0, list.size())
                        .concatMap(i -> durableWrite(b, Superblock.BITMAP_OFFSET + list.get(i) * PAGE, images.get(i)))
                        .then());
    }

    private byte[] page(long p) {
        byte[] out = new byte[PAGE];
        long from = p * BITS_PER_PAGE;
        for (long b = want.next(from); b >= 0 && b < from + BITS_PER_PAGE; b = want.next(b + 1)) {
            long k = b - from;
            out[(int) (k >>> 3)] |= (byte) (1 << (k & 7));
        }
        return out;
    }

    /** Runs {@code op} on every writable replica at once; fails a replica it fails on; errors if none took it. */
    private Mono<Void> onEveryWritable(String what, BiFunction<Integer, BlockBackend, Mono<Void>> op) {
        AtomicInteger ok = new AtomicInteger();
        AtomicInteger tried = new AtomicInteger();
        return Flux.range(0, slots)
                .flatMap(r -> {
                    MirrorBackend.Member m = host.enterWritable(r);
                    if (m == null) {
                        return Mono.empty();
                    }
                    tried.incrementAndGet();
                    return Support.<Void>call(() -> op.apply(r, m.backend))
                            .doOnSuccess(v -> ok.incrementAndGet())
                            .onErrorResume(e -> {
                                host.metadataFailed(m, false, what + " write failed: " + Support.describe(e));
                                return Mono.empty();
                            })
                            .doFinally(sig -> m.exit());
                })
                .then(Mono.defer(() -> ok.get() > 0 || tried.get() == 0
                        ? Mono.<Void>empty()
                        : Mono.error(Support.ioError(Errno.EIO, what + " write failed on every replica"))));
    }

    /** Writes {@code bytes} so that they are durable on completion: FUA, else write and flush, else a plain write. */
    private Mono<Void> durableWrite(BlockBackend b, long offset, byte[] bytes) {
        ByteBuf buf = b.allocator().directBuffer(bytes.length);
        buf.writeBytes(bytes);
        boolean fua = b.capabilities().contains(Capability.FUA);
        Mono<Void> w = Support.<Void>call(() -> b.write(offset, buf, fua)).doFinally(s -> buf.release());
        return fua || !Support.hasFlush(b) ? w : w.then(Mono.defer(() -> Support.<Void>call(b::flush)));
    }
}

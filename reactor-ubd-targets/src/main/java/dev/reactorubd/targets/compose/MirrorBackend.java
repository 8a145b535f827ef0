package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.SignalType;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * RAID-1: every replica holds the whole device. Made by {@link Backends#mirror}.
 *
 * <h2>Requests</h2>
 * <ul>
 * <li>WRITE, FLUSH, DISCARD and WRITE_ZEROES go to every replica that is {@link ReplicaState#IN_SYNC IN_SYNC} or
 * {@link ReplicaState#RESYNCING RESYNCING}, all at once, and complete when all of them have terminated: with success
 * when at least one in-sync replica succeeded, else with EIO. A request reaching no replica fails with EIO.</li>
 * <li>READ goes to one in-sync replica, taken round-robin; if it fails, the read is tried on the next in-sync replica
 * (on the queue's loop), until one succeeds or none is left (EIO).</li>
 * <li>A replica whose request fails (an error, an empty or short read) is marked {@link ReplicaState#FAILED FAILED}
 * and gets no request afterwards. Its errno is not the request's: the mirror's job is to hide it.</li>
 * </ul>
 *
 * <h2>Health and resync</h2>
 * Every state change is signalled on {@link #health()} and logged (FAILED at WARN, the others at INFO). While a replica
 * is not in sync, the mirror records which regions ({@link #regionBytes()}, 64 KiB by default) were written without it,
 * in a per-replica bitmap of atomics: the regions of each write, discard or write-zeroes that skipped it or failed on it.
 * A FLUSH that fails on a replica marks the whole replica dirty (what it had cached may be lost).
 *
 * <p>{@link #reinstate(int)} brings a FAILED replica back; nothing probes replicas by itself. The replica becomes
 * RESYNCING, gets every write from then on, and a background copy reads each dirty region from an in-sync replica and
 * writes it to the reinstated one, one region per loop turn, while IO continues. A region with a write in flight is
 * copied later, and a region written while it was being copied is copied again (a generation check per region
 * stripe), so a copy never overwrites newer data for long. When no region is dirty, no write that skipped the
 * replica is still in flight, and no copy to it is (not even one of an earlier resync that a new failure ended: it may
 * still land, and its region is then copied again), the replica is IN_SYNC again and serves reads. A failure during
 * the copy marks the replica (or the source it read from) FAILED again; the regions not yet copied stay dirty for the
 * next reinstate.
 *
 * <p>A write completes only when every replica it was sent to has answered: wrap replicas that can hang in a {@link
 * TimeoutBackend} ({@code Backends.mirror(Backends.from(a).timeout(d), ...)}) so that a hung replica fails (and is
 * marked FAILED) instead of stalling the device.
 *
 * <h2>Threads</h2>
 * Requests may come from every queue at once: state lives in one shared object of atomics, taken by no lock on the
 * request path (a short lock orders state changes). {@link #bind} binds every replica to the queue and returns a view
 * over the bound replicas that shares that state; the resync runs on the loop of one bound queue, with that queue's
 * bound replicas (on {@code Schedulers.parallel()} with the unbound replicas when no queue is bound).
 *
 * <p><b>Size</b>: the smallest replica's (every replica must know its size). <b>Capabilities</b>: DISCARD and
 * WRITE_ZEROES when every replica has them; FLUSH when any has it (a flush reaches those that have it); FUA when every
 * replica with FLUSH has FUA. Ranges beyond the size fail with EINVAL. {@link #close()} stops resyncs and closes the
 * replicas.
 */
public final class MirrorBackend extends ComposableBackend {
    /** The default dirty-map granularity: 64 KiB. */
    public static final int DEFAULT_REGION_BYTES = 64 << 10;

    private static final Logger log = LoggerFactory.getLogger(MirrorBackend.class);

    private final MirrorState s;
    /** Per slot, the replica this view sends to: its member, and that member's backend as bound to this view's queue. */
    final AtomicReferenceArray<Seat> seats;
    /** The queue's loop for a bound view; null when unbound. */
    private final Scheduler loop;
    /** The queue of a bound view; null when unbound. */
    final UbdQueue queue;

    private final ByteBufAllocator copyAllocator;

    MirrorBackend(int regionBytes, BlockBackend[] replicas) {
        BlockBackend[] checked = Support.checkParts("mirror", replicas, 1);
        if (checked.length > 64) {
            throw new IllegalArgumentException("a mirror has at most 64 replicas; was " + checked.length);
        }
        this.s = new MirrorState(this, regionBytes, checked);
        this.seats = s.unboundSeats();
        this.loop = null;
        this.queue = null;
        this.copyAllocator = checked[0].allocator();
    }

    private MirrorBackend(MirrorAssembly.Plan plan, MirrorOptions options, BlockBackend[] replicas) {
        this.s = new MirrorState(this, plan, options, replicas);
        this.seats = s.unboundSeats();
        this.loop = null;
        this.queue = null;
        this.copyAllocator = replicas[0].allocator();
    }

    /**
     * Assembles a persistent mirror from its replicas' superblocks (see {@link Backends#assembleMirror}): reads them,
     * decides which replicas are current, writes every superblock with a new event count and the bitmap, and starts
     * the resync of every replica that is not current. Runs on the threads the replicas complete on; blocks nothing.
     *
     * @param options  the region size (for a new mirror), the replica assumed current, the bitmap's clear delay
     * @param replicas the replicas, in slot order
     * @return a Mono of the mirror, once its metadata is written; {@link MirrorAssemblyException} when it refuses (the
     *         replicas are then left untouched and open: the caller closes them)
     */
    static Mono<MirrorBackend> assemble(MirrorOptions options, BlockBackend... replicas) {
        return Mono.defer(() -> {
            BlockBackend[] checked = Support.checkParts("mirror", replicas, 1);
            if (checked.length > Superblock.MAX_SLOTS) {
                throw new IllegalArgumentException("a mirror has at most 64 replicas; was " + checked.length);
            }
            for (int i = 0; i < checked.length; i++) {
                if (checked[i].size() <= 0) {
                    throw new IllegalArgumentException("a mirror needs every replica's size; replica " + i + " ("
                            + checked[i] + ") reports an unknown size");
                }
            }
            return MirrorAssembly.plan(checked, options).flatMap(plan -> {
                MirrorBackend m = new MirrorBackend(plan, options, checked);
                StringBuilder report = new StringBuilder();
                for (int i = 0; i < checked.length; i++) {
                    report.append(i == 0 ? "" : "; ")
                            .append(i)
                            .append(" (")
                            .append(checked[i])
                            .append("): ")
                            .append(plan.report().get(i));
                }
                log.info(
                        "mirror {} {} ({} bytes of data at offset {}, events {}): {}",
                        plan.base().mirrorId(),
                        plan.created() ? "created" : "assembled",
                        plan.base().dataSize(),
                        plan.base().dataOffset(),
                        plan.base().events(),
                        report);
                return m.s.journal
                        .start()
                        .then(Mono.fromRunnable(m.s::startResyncs))
                        .thenReturn(m);
            });
        });
    }

    private MirrorBackend(MirrorState s, Member[] members, BlockBackend[] bound, UbdQueue queue) {
        this.s = s;
        this.seats = new AtomicReferenceArray<>(members.length);
        for (int r = 0; r < members.length; r++) {
            seats.set(r, new Seat(members[r], bound[r]));
        }
        this.loop = queue.scheduler();
        this.queue = queue;
        this.copyAllocator = queue.allocator();
    }

    /** A replica in a slot: what fills the slot from the assembly (or the last replace) until a replace. */
    static final class Member {
        final int slot;
        final BlockBackend backend;
        /** The id the superblocks record for the slot's occupant (docs/mirror.md). */
        final long id;
        /** The regions written without this replica and not yet copied to it. */
        final DirtyMap dirty;
        /** Requests and metadata IO sent to it and not yet terminated: a replaced replica is closed once it is 0. */
        final AtomicInteger inFlight = new AtomicInteger();
        /**
         * MirrorResync copies sent to it whose outcome is not recorded yet, whichever resync sent them: a copy of a resync
         * that a later failure superseded may still land, so no resync of this replica ends before it is 0.
         */
        final AtomicInteger copying = new AtomicInteger();

        Member(int slot, BlockBackend backend, long id, long regions) {
            this.slot = slot;
            this.backend = backend;
            this.id = id;
            this.dirty = new DirtyMap(regions);
        }

        /** One request or metadata IO of it has terminated. */
        void exit() {
            inFlight.decrementAndGet();
        }

        @Override
        public String toString() {
            return backend.toString();
        }
    }

    /** A slot as one view sees it: the member, and its backend as bound to the view's queue. */
    record Seat(Member member, BlockBackend part) {}

    /**
     * Slot {@code r}'s seat, counted in flight, if the slot's state word is still {@code st} (read before); else null.
     * A replace changes the state word before it changes the seats, so a seat taken while the word is unchanged is the
     * member that word describes.
     */
    Seat enter(int r, long st) {
        Seat seat = seats.get(r);
        seat.member.inFlight.incrementAndGet();
        if (s.states.get(r) != st) {
            seat.member.exit();
            return null;
        }
        return seat;
    }

    // ---------------------------------------------------------------- public API

    /**
     * Replica state changes, as they happen. Hot: a subscriber sees the changes made after it subscribed and nothing
     * before (no replay; {@link #states()} gives the current ones); a subscriber without demand misses events. Signalled
     * on the thread that made the change (often a queue's event loop): do not block in it.
     *
     * @return replica state changes, as they happen
     */
    public Flux<HealthEvent> health() {
        return s.sink.asFlux();
    }

    /**
     * The state of replica {@code replica}.
     *
     * @param replica the replica index, from 0
     * @return the state of replica {@code replica}
     */
    public ReplicaState state(int replica) {
        return MirrorState.stateOf(s.states.get(s.check(replica)));
    }

    /** {@return every replica's state, in replica order} */
    public List<ReplicaState> states() {
        List<ReplicaState> out = new ArrayList<>(s.n);
        for (int r = 0; r < s.n; r++) {
            out.add(state(r));
        }
        return out;
    }

    /**
     * Regions of replica {@code replica} recorded as written without it and not yet copied back.
     *
     * @param replica the replica index, from 0
     * @return regions of replica {@code replica} recorded as written without it and not yet copied back
     */
    public long dirtyRegions(int replica) {
        return s.members.get(s.check(replica)).dirty.count();
    }

    /** {@return regions copied by resyncs since the mirror was made} */
    public long copiedRegions() {
        return s.copied.get();
    }

    /** {@return the granularity of the dirty map and of the resync copy, in bytes} */
    public int regionBytes() {
        return s.region;
    }

    /**
     * The device size of a new persistent mirror over replicas of {@code smallestReplica} bytes: what is left after the
     * superblocks and the bitmap, on a 1 MiB boundary, rounded down to 4 KiB.
     *
     * @param smallestReplica the smallest replica's size
     * @param regionBytes     the bitmap's region
     * @return the device size, or 0 when the replicas are too small
     */
    public static long newMirrorSize(long smallestReplica, int regionBytes) {
        long regions = (smallestReplica + regionBytes - 1) / regionBytes;
        long bitmap = MirrorAssembly.roundUp((regions + 7) / 8, Superblock.BYTES);
        long offset = MirrorAssembly.roundUp(Superblock.BITMAP_OFFSET + bitmap, MirrorAssembly.DATA_ALIGN);
        return Math.max(0, (smallestReplica - offset) / 4096 * 4096);
    }

    /** {@return the persistent mirror's id (the same in every replica's superblock), or null for an in-memory mirror} */
    public UUID mirrorId() {
        return s.mirrorId;
    }

    /** {@return the event counter of the last superblock round started (0 for an in-memory mirror)} */
    public long events() {
        return s.journal == null ? 0 : s.journal.events();
    }

    /** {@return regions whose bit is set in the write-intent bitmap (0 for an in-memory mirror)} */
    public long bitmapRegions() {
        return s.journal == null ? 0 : s.journal.dirtyBits();
    }

    /** {@return bitmap pages written since the mirror was opened (each to every replica not FAILED)} */
    public long bitmapPageWrites() {
        return s.journal == null ? 0 : s.journal.bitmapWrites();
    }

    /** {@return where the device's byte 0 is on each replica: 0 for an in-memory mirror, after the metadata else} */
    public long dataOffset() {
        return s.dataOffset;
    }

    /** {@return whether some replica is not IN_SYNC: the mirror then has less redundancy than it was built with} */
    public boolean isDegraded() {
        return !s.allInSync();
    }

    /** {@return the replicas (a queue's view: its bound replicas), in order} */
    public List<BlockBackend> replicas() {
        List<BlockBackend> out = new ArrayList<>(s.n);
        for (int r = 0; r < s.n; r++) {
            out.add(seats.get(r).part);
        }
        return out;
    }

    /**
     * Brings a FAILED replica back: on subscription it becomes RESYNCING at once and the background copy of its dirty
     * regions starts; the Mono completes when it is IN_SYNC again, or fails with EIO when the copy fails (the replica is
     * then FAILED again). For a replica already RESYNCING it waits for that copy; for one IN_SYNC it completes at once.
     * Cancelling the Mono does not stop the copy.
     *
     * @param replica the replica index, from 0
     * @return a Mono that completes when the replica is IN_SYNC again, or fails with EIO when the copy fails
     * @throws IllegalArgumentException for an index that is not a replica's
     */
    public Mono<Void> reinstate(int replica) {
        s.check(replica);
        return Mono.defer(() -> s.reinstate(replica));
    }

    /**
     * Puts {@code replacement} in slot {@code replica} in place of the replica there, while IO continues: for a disk
     * that died, or to move a replica elsewhere. On subscription:
     * <ol>
     * <li>the replacement is checked: at least the mirror's size (plus the metadata area for a persistent mirror),
     * every capability the mirror offers (DISCARD, WRITE_ZEROES, FUA where it has FLUSH), and for a persistent
     * mirror a start that is blank or this mirror's superblock (never another mirror's or other data);</li>
     * <li>it is bound to every queue the mirror is bound to;</li>
     * <li>the old replica is marked FAILED (a {@link HealthEvent} FAILED -&gt; FAILED says "replaced" when it was
     * failed already) and the slot's replica is swapped on every queue at once: requests already sent to the old one
     * finish there, and none reaches it afterwards; a failure of the old one no longer counts against the slot;</li>
     * <li>the replacement gets a new member id and, for a persistent mirror, its superblock (role "needs a full
     * copy"): should the old replica come back at a later assembly, it gets a full copy too, never a resync from the
     * bitmap, which was cleared without it;</li>
     * <li>its full sync starts (RESYNCING, like {@link #reinstate}), and the old replica is closed once no request
     * sent to it is left (after at most {@link #RETIRE_WAIT}, closed then anyway, with a warning).</li>
     * </ol>
     * The Mono completes after step 4 (the replacement is in place and on record); {@link #reinstate(int)} then waits
     * for the sync, {@link #states()} and {@link #dirtyRegions(int)} show its progress. A replace of the only in-sync
     * replica is refused: nothing would hold the data to copy.
     *
     * @param replica     the slot, from 0
     * @param replacement the new replica (unbound, opened by the caller; the mirror closes it when it closes)
     * @return a Mono that completes once the replacement is in place, or fails with {@link MirrorReplaceException}
     *         (nothing changed; the replacement is not closed: the caller closes it), or with the error of a bind
     * @throws IllegalArgumentException for an index that is not a replica's
     */
    public Mono<Void> replace(int replica, BlockBackend replacement) {
        s.check(replica);
        Objects.requireNonNull(replacement, "replacement");
        return Mono.defer(() -> s.replace(replica, replacement));
    }

    /** How long a replaced replica may keep requests in flight before it is closed anyway. */
    public static final Duration RETIRE_WAIT = Duration.ofSeconds(30);

    // ---------------------------------------------------------------- requests

    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        Mono<ByteBuf> bad = Support.outOfRange(s.size, offset, length, this);
        return bad != null ? bad : readFrom(offset, length, allocator, 0L, null);
    }

    private Mono<ByteBuf> readFrom(long offset, int length, ByteBufAllocator allocator, long tried, Throwable last) {
        int r;
        Seat seat = null;
        while (true) {
            r = s.pickReadable(tried);
            if (r < 0) {
                return Mono.error(Support.ioError(
                        Errno.EIO,
                        "no in-sync replica could read " + offset + "+" + length
                                + (last != null ? " (last error: " + Support.describe(last) + ")" : "")));
            }
            long st = s.states.get(r);
            if (MirrorState.stateOf(st) == ReplicaState.IN_SYNC && (seat = enter(r, st)) != null) {
                break;
            }
            tried |= 1L << r; // changing state under this read (failing, or being replaced)
        }
        Seat from = seat;
        int slot = r;
        long triedNow = tried;
        return readFrom(from, slot, offset, length, allocator, triedNow);
    }

    private Mono<ByteBuf> readFrom(Seat from, int r, long offset, int length, ByteBufAllocator allocator, long tried) {
        return Support.<ByteBuf>call(() -> from.part.read(s.dataOffset + offset, length, allocator))
                .switchIfEmpty(Mono.error(() -> Support.ioError(Errno.EIO, "the read answered no data")))
                .<ByteBuf>handle((buf, sink) -> {
                    if (buf.readableBytes() == length) {
                        sink.next(buf);
                    } else {
                        int got = buf.readableBytes();
                        buf.release();
                        sink.error(Support.ioError(Errno.EIO, "the read answered " + got + " bytes of " + length));
                    }
                })
                .doFinally(sig -> from.member.exit())
                .onErrorResume(e -> {
                    s.fail(from.member, "read of " + offset + "+" + length + " failed: " + Support.describe(e));
                    Mono<ByteBuf> next = Mono.defer(() -> readFrom(offset, length, allocator, tried | (1L << r), e));
                    return loop == null ? next : next.subscribeOn(loop);
                });
    }

    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        int length = data.readableBytes();
        Mono<Void> bad = Support.outOfRange(s.size, offset, length, this);
        // Each replica reads the data through its own indices.
        return bad != null
                ? bad
                : update(
                        offset,
                        length,
                        false,
                        p -> p.part.write(s.dataOffset + offset, data.duplicate(), fua),
                        "write");
    }

    @Override
    public Mono<Void> flush() {
        return update(0, 0, true, p -> Support.hasFlush(p.member.backend) ? p.part.flush() : Mono.empty(), "flush");
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        Mono<Void> bad = check(offset, length, Capability.DISCARD);
        return bad != null
                ? bad
                : update(offset, length, false, p -> p.part.discard(s.dataOffset + offset, length), "discard");
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        Mono<Void> bad = check(offset, length, Capability.WRITE_ZEROES);
        return bad != null
                ? bad
                : update(
                        offset,
                        length,
                        false,
                        p -> p.part.writeZeroes(s.dataOffset + offset, length, noUnmap),
                        "write-zeroes");
    }

    private Mono<Void> check(long offset, long length, Capability c) {
        Mono<Void> bad = Support.unsupported(s.capabilities, c, this);
        return bad != null ? bad : Support.outOfRange(s.size, offset, length, this);
    }

    /** Sends a modifying request to every replica in or coming into sync; see the class comment. */
    private Mono<Void> update(long offset, long length, boolean isFlush, Function<Seat, Mono<Void>> op, String what) {
        return Mono.defer(() -> {
            boolean track = length > 0;
            long first = track ? offset / s.region : 0;
            long last = track ? (offset + length - 1) / s.region : -1;
            if (track) {
                s.writes.begin(first, last);
            }
            int n = s.n;
            boolean[] skipped = new boolean[n];
            boolean[] inSync = new boolean[n];
            Seat[] targets = new Seat[n];
            int count = 0;
            for (int r = 0; r < n; r++) {
                while (true) {
                    long st = s.states.get(r);
                    ReplicaState state = MirrorState.stateOf(st);
                    if (state != ReplicaState.FAILED) {
                        Seat seat = enter(r, st);
                        if (seat == null) {
                            continue; // its state changed meanwhile: look again
                        }
                        inSync[r] = state == ReplicaState.IN_SYNC;
                        targets[count++] = seat;
                        break;
                    }
                    // Skipping a failed replica: record it before checking that the state did not change meanwhile
                    // (a reinstate): a resync can then not finish before this write's regions are copied.
                    s.skippers.incrementAndGet(r);
                    if (track) {
                        s.members.get(r).dirty.mark(first, last);
                    }
                    if (s.states.get(r) == st) {
                        skipped[r] = true;
                        break;
                    }
                    s.skippers.decrementAndGet(r);
                }
            }
            int entered = count;
            Runnable finish = () -> {
                if (track) {
                    s.writes.end(first, last);
                }
                for (int r = 0; r < n; r++) {
                    if (skipped[r]) {
                        s.skippers.decrementAndGet(r);
                    }
                }
                for (int i = 0; i < entered; i++) {
                    targets[i].member.exit();
                }
            };
            if (count == 0) {
                finish.run();
                return Mono.error(
                        Support.ioError(Errno.EIO, "every replica has failed; the " + what + " reached none"));
            }
            boolean lostOne = false;
            for (boolean k : skipped) {
                lostOne |= k;
            }
            AtomicBoolean failedOne = new AtomicBoolean(lostOne);
            AtomicInteger ok = new AtomicInteger();
            Mono<?>[] calls = new Mono<?>[count];
            for (int i = 0; i < count; i++) {
                Seat seat = targets[i];
                boolean counts = inSync[seat.member.slot];
                // Deferred: a replica may start its IO when called, and it must not before the bitmap is on disk.
                calls[i] = Mono.defer(() -> Support.<Void>call(() -> op.apply(seat)))
                        .doOnSuccess(v -> {
                            if (counts) {
                                ok.incrementAndGet();
                            }
                        })
                        .onErrorResume(e -> {
                            failedOne.set(true);
                            s.partFailed(
                                    seat.member,
                                    isFlush,
                                    first,
                                    last,
                                    what + (track ? " of " + offset + "+" + length : "") + " failed: "
                                            + Support.describe(e));
                            return Mono.empty();
                        });
            }
            MirrorJournal journal = s.journal;
            // The region's bit must be durable before its data goes to any replica (null: it already is).
            Mono<Void> gate = track && journal != null ? journal.markDirty(first, last) : null;
            Mono<Void> sent = Join.all(calls).then();
            if (journal != null) {
                // A write that missed a replica is acknowledged only once the superblocks say that replica is out.
                sent = sent.then(Mono.defer(() -> failedOne.get() ? journal.superblockBarrier() : Mono.<Void>empty()));
            }
            int sent0 = count;
            return (gate == null ? sent : gate.then(sent))
                    .then(Mono.defer(() -> ok.get() > 0
                            ? Mono.<Void>empty()
                            : Mono.error(Support.ioError(Errno.EIO, "no in-sync replica took the " + what))))
                    .doFinally(sig -> {
                        finish.run();
                        if (sig == SignalType.CANCEL && track && sent0 > 1) {
                            s.givenUp(targets, sent0, first, last, what + " of " + offset + "+" + length);
                        }
                    });
        });
    }

    /** Copies one region from {@code src} to {@code dst} (seats of this view); a source's failure is marked. */
    Mono<Void> copy(Seat src, Seat dst, long region) {
        long at = region * s.region;
        int len = (int) Math.min(s.region, s.size - at);
        long off = s.dataOffset + at;
        return Support.<ByteBuf>call(() -> src.part.read(off, len, copyAllocator))
                .switchIfEmpty(Mono.error(() -> Support.ioError(Errno.EIO, "the read answered no data")))
                .onErrorMap(SourceFailure::new)
                .flatMap(buf -> {
                    if (buf.readableBytes() != len) {
                        int got = buf.readableBytes();
                        buf.release();
                        return Mono.error(new SourceFailure(
                                Support.ioError(Errno.EIO, "the read answered " + got + " bytes of " + len)));
                    }
                    Mono<Void> w = Mono.defer(() -> Support.<Void>call(() -> dst.part.write(off, buf, false)));
                    return (loop == null ? w : w.subscribeOn(loop)).doFinally(sig -> buf.release());
                });
    }

    /** A resync's read from its source failed (not the write to the replica being resynced). */
    static final class SourceFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        SourceFailure(Throwable cause) {
            super(cause.getMessage(), cause, false, false);
        }
    }

    Scheduler timers() {
        return loop != null ? loop : Schedulers.parallel();
    }

    // ---------------------------------------------------------------- backend

    /** Binds every replica to {@code queue}; the view shares this mirror's health, dirty maps and resyncs. */
    @Override
    public Mono<BlockBackend> bind(UbdQueue queue) {
        return Mono.defer(() -> {
            Member[] members = s.currentMembers();
            BlockBackend[] backends = new BlockBackend[members.length];
            for (int r = 0; r < members.length; r++) {
                backends[r] = members[r].backend;
            }
            return Support.bindAll(backends, queue).flatMap(bound -> {
                MirrorBackend view;
                synchronized (s.lock) {
                    if (!Arrays.equals(members, s.currentMembers())) {
                        view = null; // a replace came between: bind its replica too
                    } else {
                        view = new MirrorBackend(s, members, bound, queue);
                        s.views.add(view);
                    }
                }
                if (view == null) {
                    return bind(queue);
                }
                queue.onTerminated().doFinally(sig -> s.views.remove(view)).subscribe(v -> {}, e -> {});
                return Mono.just(view);
            });
        });
    }

    @Override
    public Set<Capability> capabilities() {
        return s.capabilities;
    }

    @Override
    public ByteBufAllocator allocator() {
        return seats.get(0).part.allocator();
    }

    @Override
    public long size() {
        return s.size;
    }

    /** Stops resyncs and closes every replica (once; later calls complete at once). */
    @Override
    public Mono<Void> close() {
        return Mono.defer(s::close);
    }

    @Override
    public String toString() {
        return "mirror(" + replicas() + ")";
    }
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Queue;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.SignalType;
import reactor.core.publisher.Sinks;
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

    private final Shared s;
    /** Per slot, the replica this view sends to: its member, and that member's backend as bound to this view's queue. */
    private final AtomicReferenceArray<Seat> seats;
    /** The queue's loop for a bound view; null when unbound. */
    private final Scheduler loop;
    /** The queue of a bound view; null when unbound. */
    private final UbdQueue queue;

    private final ByteBufAllocator copyAllocator;

    MirrorBackend(int regionBytes, BlockBackend[] replicas) {
        BlockBackend[] checked = Support.checkParts("mirror", replicas, 1);
        if (checked.length > 64) {
            throw new IllegalArgumentException("a mirror has at most 64 replicas; was " + checked.length);
        }
        this.s = new Shared(this, regionBytes, checked);
        this.seats = s.unboundSeats();
        this.loop = null;
        this.queue = null;
        this.copyAllocator = checked[0].allocator();
    }

    private MirrorBackend(MirrorAssembly.Plan plan, MirrorOptions options, BlockBackend[] replicas) {
        this.s = new Shared(this, plan, options, replicas);
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

    private MirrorBackend(Shared s, Member[] members, BlockBackend[] bound, UbdQueue queue) {
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
         * Resync copies sent to it whose outcome is not recorded yet, whichever resync sent them: a copy of a resync
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
    private record Seat(Member member, BlockBackend part) {}

    /**
     * Slot {@code r}'s seat, counted in flight, if the slot's state word is still {@code st} (read before); else null.
     * A replace changes the state word before it changes the seats, so a seat taken while the word is unchanged is the
     * member that word describes.
     */
    private Seat enter(int r, long st) {
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
        return Shared.stateOf(s.states.get(s.check(replica)));
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
            if (Shared.stateOf(st) == ReplicaState.IN_SYNC && (seat = enter(r, st)) != null) {
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
                    ReplicaState state = Shared.stateOf(st);
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
    private Mono<Void> copy(Seat src, Seat dst, long region) {
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
    private static final class SourceFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        SourceFailure(Throwable cause) {
            super(cause.getMessage(), cause, false, false);
        }
    }

    private Scheduler timers() {
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

    // ---------------------------------------------------------------- shared state

    /** Everything the unbound mirror and its queue views share. */
    private static final class Shared {
        final MirrorBackend unbound;
        /** Per slot, its replica; changed by a replace only. */
        final AtomicReferenceArray<Member> members;
        /** Replaced replicas waiting for their requests in flight to end before they are closed. */
        final Set<Member> retiring = ConcurrentHashMap.newKeySet();

        final int n;
        final long regions;
        final long size;
        final int region;
        final Set<Capability> capabilities;
        /** Per replica: (version << 2) | state ordinal; the version changes with every transition. */
        final AtomicLongArray states;
        /** Per replica: writes in flight that skipped it. */
        final AtomicIntegerArray skippers;
        /** Per replica: a flush failed on it, so everything must be copied on reinstate. */
        final AtomicIntegerArray fullResync;

        final Generations writes = new Generations();
        final AtomicInteger nextRead = new AtomicInteger();
        final AtomicLong copied = new AtomicLong();
        final Object lock = new Object();
        final AtomicReferenceArray<Resync> resyncs;
        /**
         * Every resync not ended yet, the current ones and those a reinstate superseded while a copy of theirs was in
         * flight: a close stops them all, so that no copy outlives the mirror (holding its buffer).
         */
        final Set<Resync> running = ConcurrentHashMap.newKeySet();

        final Queue<HealthEvent> pending = new ConcurrentLinkedQueue<>();
        final AtomicInteger emitting = new AtomicInteger();
        final Sinks.Many<HealthEvent> sink = Sinks.many().multicast().directBestEffort();
        final List<MirrorBackend> views = new CopyOnWriteArrayList<>();
        volatile boolean closed;
        /** Where the data starts on each replica: 0 for an in-memory mirror, after the metadata for a persistent one. */
        final long dataOffset;
        /** The superblocks and the write-intent bitmap of a persistent mirror; null for an in-memory one. */
        final MirrorJournal journal;
        /** Per replica: its resync copies everything (its superblock says so, so that a crash restarts it in full). */
        final AtomicIntegerArray fullSync;
        /** Per replica: resyncing after a crash only (its data is current): its superblock keeps it active. */
        final AtomicIntegerArray crashResync;
        /** The persistent mirror's id, or null. */
        final UUID mirrorId;

        final MirrorAssembly.Start[] starts;

        Shared(MirrorBackend unbound, int regionBytes, BlockBackend[] replicas) {
            if (regionBytes < 512 || regionBytes % 512 != 0) {
                throw new IllegalArgumentException(
                        "the region must be a positive multiple of 512 bytes; was " + regionBytes);
            }
            this.unbound = unbound;
            this.n = replicas.length;
            this.region = regionBytes;
            long min = Long.MAX_VALUE;
            for (int i = 0; i < n; i++) {
                long sz = replicas[i].size();
                if (sz <= 0) {
                    throw new IllegalArgumentException("a mirror needs every replica's size; replica " + i + " ("
                            + replicas[i] + ") reports " + (sz == UNKNOWN_SIZE ? "an unknown size" : "size " + sz));
                }
                min = Math.min(min, sz);
            }
            this.size = min;
            this.capabilities = Support.combined(replicas);
            this.states = new AtomicLongArray(n);
            this.regions = (size + region - 1) / region;
            this.members = new AtomicReferenceArray<>(n);
            for (int i = 0; i < n; i++) {
                states.set(i, ReplicaState.IN_SYNC.ordinal());
                members.set(i, new Member(i, replicas[i], MirrorAssembly.newMemberId(), regions));
            }
            this.skippers = new AtomicIntegerArray(n);
            this.fullResync = new AtomicIntegerArray(n);
            this.resyncs = new AtomicReferenceArray<>(n);
            this.dataOffset = 0;
            this.journal = null;
            this.fullSync = new AtomicIntegerArray(n);
            this.crashResync = new AtomicIntegerArray(n);
            this.mirrorId = null;
            this.starts = null;
        }

        /** A persistent mirror as {@code plan} says: replicas that are not current start FAILED, then resync. */
        Shared(MirrorBackend unbound, MirrorAssembly.Plan plan, MirrorOptions options, BlockBackend[] replicas) {
            Superblock base = plan.base();
            this.unbound = unbound;
            this.n = replicas.length;
            this.region = base.regionBytes();
            this.size = base.dataSize();
            this.dataOffset = base.dataOffset();
            this.capabilities = Support.combined(replicas);
            this.states = new AtomicLongArray(n);
            this.regions = (size + region - 1) / region;
            this.members = new AtomicReferenceArray<>(n);
            this.skippers = new AtomicIntegerArray(n);
            this.fullResync = new AtomicIntegerArray(n);
            this.resyncs = new AtomicReferenceArray<>(n);
            this.fullSync = new AtomicIntegerArray(n);
            this.crashResync = new AtomicIntegerArray(n);
            this.mirrorId = base.mirrorId();
            this.starts = plan.starts();
            for (int i = 0; i < n; i++) {
                Member m = new Member(i, replicas[i], plan.members()[i], regions);
                members.set(i, m);
                DirtyMap dirty = m.dirty;
                MirrorAssembly.Start st = plan.starts()[i];
                states.set(
                        i, (st == MirrorAssembly.Start.CURRENT ? ReplicaState.IN_SYNC : ReplicaState.FAILED).ordinal());
                switch (st) {
                    case CURRENT -> {}
                    case CRASH_RESYNC -> {
                        crashResync.set(i, 1);
                        copy(plan.bitmap(), dirty);
                    }
                    case BITMAP_RESYNC -> copy(plan.bitmap(), dirty);
                    case FULL_SYNC -> {
                        fullSync.set(i, 1);
                        dirty.markAll();
                    }
                    case FAILED -> fullResync.set(i, 1);
                }
            }
            this.journal = new MirrorJournal(
                    new JournalHost(this), n, base, base.events(), plan.bitmap(), options.clearDelay());
        }

        /** The unbound mirror's seats: every member with its own backend. */
        AtomicReferenceArray<Seat> unboundSeats() {
            AtomicReferenceArray<Seat> out = new AtomicReferenceArray<>(n);
            for (int r = 0; r < n; r++) {
                Member m = members.get(r);
                out.set(r, new Seat(m, m.backend));
            }
            return out;
        }

        Member[] currentMembers() {
            Member[] out = new Member[n];
            for (int r = 0; r < n; r++) {
                out[r] = members.get(r);
            }
            return out;
        }

        private static void copy(DirtyMap from, DirtyMap to) {
            for (long b = from.next(0); b >= 0; b = from.next(b + 1)) {
                to.mark(b, b);
            }
        }

        /** Starts the resync of every replica the plan did not find current (and could read). */
        void startResyncs() {
            for (int i = 0; i < n; i++) {
                MirrorAssembly.Start st = starts[i];
                if (st != MirrorAssembly.Start.CURRENT && st != MirrorAssembly.Start.FAILED) {
                    reinstate(
                                    i,
                                    "assembled "
                                            + switch (st) {
                                                case CRASH_RESYNC -> "after an unclean shutdown";
                                                case BITMAP_RESYNC -> "stale";
                                                default -> "blank or untrusted: full sync";
                                            })
                            .subscribe(v -> {}, e -> {});
                }
            }
        }

        /** The role replica {@code r} has in the superblocks, from its state and flags. */
        byte role(int r) {
            return switch (state(r)) {
                case IN_SYNC -> Superblock.ROLE_ACTIVE;
                case RESYNCING ->
                    fullSync.get(r) != 0
                            ? Superblock.ROLE_FULL
                            : crashResync.get(r) != 0 ? Superblock.ROLE_ACTIVE : Superblock.ROLE_RESYNCING;
                case FAILED ->
                    fullSync.get(r) != 0 || fullResync.get(r) != 0 ? Superblock.ROLE_FULL : Superblock.ROLE_FAILED;
            };
        }

        static ReplicaState stateOf(long packed) {
            return ReplicaState.values()[(int) (packed & 3)];
        }

        int check(int replica) {
            if (replica < 0 || replica >= n) {
                throw new IllegalArgumentException("no replica " + replica + "; the mirror has " + n);
            }
            return replica;
        }

        ReplicaState state(int r) {
            return stateOf(states.get(r));
        }

        int pickReadable(long tried) {
            int start = Math.floorMod(nextRead.getAndIncrement(), n);
            for (int i = 0; i < n; i++) {
                int r = (start + i) % n;
                if ((tried & (1L << r)) == 0 && state(r) == ReplicaState.IN_SYNC) {
                    return r;
                }
            }
            return -1;
        }

        int pickSource(int except) {
            for (int r = 0; r < n; r++) {
                if (r != except && state(r) == ReplicaState.IN_SYNC) {
                    return r;
                }
            }
            return -1;
        }

        /** The view whose loop and bound replicas run the resync: the first bound queue's, else the unbound mirror. */
        MirrorBackend driver() {
            for (MirrorBackend v : views) {
                return v;
            }
            return unbound;
        }

        /** Changes a state; holds {@link #lock}. Queues the event; the caller drains after releasing the lock. */
        private boolean transitionLocked(int r, ReplicaState from, ReplicaState to, String reason) {
            long cur = states.get(r);
            if (stateOf(cur) != from) {
                return false;
            }
            states.set(r, (((cur >>> 2) + 1) << 2) | to.ordinal());
            if (to == ReplicaState.FAILED) {
                log.warn("mirror replica {} ({}): {} -> {}: {}", r, members.get(r), from, to, reason);
            } else {
                log.info("mirror replica {} ({}): {} -> {}: {}", r, members.get(r), from, to, reason);
            }
            if (to == ReplicaState.IN_SYNC) {
                fullSync.set(r, 0);
            }
            if (from == ReplicaState.RESYNCING && to == ReplicaState.FAILED && crashResync.get(r) != 0) {
                // Its data is current but for the regions it had not got yet: they are in the bitmap.
                crashResync.set(r, 0);
            }
            if (to == ReplicaState.IN_SYNC) {
                crashResync.set(r, 0);
            }
            pending.add(new HealthEvent(r, from, to, reason));
            if (journal != null) {
                if (to == ReplicaState.IN_SYNC) {
                    journal.rewriteBitmap();
                }
                journal.requestSuperblock();
            }
            return true;
        }

        /** Signals queued events, one thread at a time, outside the lock; a change made by a subscriber is queued. */
        void drain() {
            if (emitting.getAndIncrement() != 0) {
                return;
            }
            do {
                HealthEvent e;
                while ((e = pending.poll()) != null) {
                    sink.tryEmitNext(e);
                }
            } while (emitting.decrementAndGet() != 0);
        }

        /** Fails replica {@code m}; nothing when it has left its slot (a request to a replaced replica failed). */
        void fail(Member m, String reason) {
            int r = m.slot;
            synchronized (lock) {
                ReplicaState st = state(r);
                if (members.get(r) == m && st != ReplicaState.FAILED) {
                    transitionLocked(r, st, ReplicaState.FAILED, reason);
                }
            }
            drain();
        }

        /**
         * A modifying request sent to {@code count} replicas was given up (cancelled: the server's request timeout)
         * before all of them answered: some may have it and some not, and reads taking replicas in turn would see
         * either. The first in-sync one stays; every other one is failed with the regions marked and reinstated at
         * once, so that those regions are copied from it and reads go to it meanwhile.
         */
        void givenUp(Seat[] targets, int count, long first, long last, String what) {
            int keep = -1;
            for (int i = 0; i < count && keep < 0; i++) {
                Member m = targets[i].member;
                if (members.get(m.slot) == m && state(m.slot) == ReplicaState.IN_SYNC) {
                    keep = m.slot;
                }
            }
            if (keep < 0) {
                return; // none was in sync: the resyncing ones copy these regions anyway once they are marked
            }
            for (int i = 0; i < count; i++) {
                Member m = targets[i].member;
                int r = m.slot;
                if (r != keep && members.get(r) == m && state(r) != ReplicaState.FAILED) {
                    partFailed(
                            m,
                            false,
                            first,
                            last,
                            what + " was given up (timed out) before every replica "
                                    + "answered; its regions are copied again from replica " + keep);
                    reinstate(r, "regions of a given-up write to copy from replica " + keep)
                            .subscribe(
                                    null,
                                    e -> log.warn(
                                            "mirror replica {}: resync after a given-up write failed: {}",
                                            r,
                                            Support.describe(e)));
                }
            }
        }

        /** A modifying request failed on replica {@code m}: record what it missed, then fail it. */
        void partFailed(Member m, boolean isFlush, long first, long last, String reason) {
            if (members.get(m.slot) != m) {
                return; // replaced since: the request's failure says nothing of the slot's new replica
            }
            if (isFlush) {
                fullResync.set(m.slot, 1);
            } else if (last >= first) {
                m.dirty.mark(first, last);
            }
            fail(m, reason);
        }

        Mono<Void> reinstate(int r) {
            return reinstate(r, "reinstated");
        }

        /** Per slot: 1 while a replace of it runs. */
        final AtomicIntegerArray replacing = new AtomicIntegerArray(64);

        Mono<Void> replace(int r, BlockBackend with) {
            String unsuitable = unsuitable(r, with);
            if (unsuitable != null) {
                return Mono.error(new MirrorReplaceException(MirrorReplaceException.Reason.UNSUITABLE, unsuitable));
            }
            String notNow = notNow(r);
            if (notNow != null) {
                return Mono.error(new MirrorReplaceException(MirrorReplaceException.Reason.NOT_NOW, notNow));
            }
            if (!replacing.compareAndSet(r, 0, 1)) {
                return Mono.error(new MirrorReplaceException(
                        MirrorReplaceException.Reason.NOT_NOW,
                        "replica " + r + " is being replaced already: wait for that replace to end"));
            }
            Mono<Void> checked = journal == null ? Mono.empty() : checkStart(r, with);
            return checked.then(Mono.defer(() -> swap(r, with, new IdentityHashMap<>(), 0)))
                    // Before the outcome is signalled (not after, as doFinally): a caller may retry at once.
                    .doOnTerminate(() -> replacing.set(r, 0))
                    .doOnCancel(() -> replacing.set(r, 0));
        }

        /** Why {@code with} cannot take slot {@code r}, or null. */
        private String unsuitable(int r, BlockBackend with) {
            for (int i = 0; i < n; i++) {
                if (members.get(i).backend == with) {
                    return "the replacement (" + with + ") is replica " + i + " of this mirror already: give another";
                }
            }
            long need = dataOffset + size;
            if (with.size() < need) {
                return "the replacement (" + with + ") is "
                        + (with.size() < 0 ? "of unknown size" : with.size() + " bytes") + "; replica " + r
                        + " needs at least " + need
                        + (dataOffset > 0 ? " (" + dataOffset + " of metadata and " + size + " of data)" : "")
                        + ": give a larger one";
            }
            BlockBackend[] after = new BlockBackend[n];
            for (int i = 0; i < n; i++) {
                after[i] = i == r ? with : members.get(i).backend;
            }
            EnumSet<Capability> missing = EnumSet.noneOf(Capability.class);
            missing.addAll(capabilities);
            missing.removeAll(Support.combined(after));
            if (!missing.isEmpty()) {
                return "the replacement (" + with + ") lacks " + missing + ", which the mirror offers (its device was "
                        + "made with them): give a replica that supports them";
            }
            return null;
        }

        /** Why slot {@code r} cannot be given up now, or null. */
        private String notNow(int r) {
            if (closed) {
                return "the mirror is closed";
            }
            for (int i = 0; i < n; i++) {
                if (i != r && state(i) == ReplicaState.IN_SYNC) {
                    return null;
                }
            }
            return "no replica but " + r + " is in sync (" + statesText() + "): replacing it would leave nothing to "
                    + "copy from. Reinstate or wait for another replica first";
        }

        /** Refuses a replacement for a persistent mirror whose start holds another mirror's superblock, or other data. */
        private Mono<Void> checkStart(int r, BlockBackend with) {
            return MirrorAssembly.readSuperblock(with, r).flatMap(found -> switch (found) {
                case MirrorAssembly.Blank b -> Mono.<Void>empty();
                case MirrorAssembly.Valid v when v.sb().mirrorId().equals(mirrorId) -> Mono.<Void>empty();
                case MirrorAssembly.Valid v ->
                    Mono.<Void>error(new MirrorReplaceException(
                            MirrorReplaceException.Reason.UNSUITABLE,
                            "the replacement (" + with + ") is replica "
                                    + v.sb().slot() + " of another mirror (" + v.sb().mirrorId()
                                    + "): its data would be lost. "
                                    + "Give a blank replica, or zero its first " + MirrorAssembly.DATA_ALIGN
                                    + " bytes to reuse "
                                    + "it"));
                case MirrorAssembly.Damaged d ->
                    Mono.<Void>error(new MirrorReplaceException(
                            MirrorReplaceException.Reason.UNSUITABLE,
                            "the replacement (" + with + ") holds data but no "
                                    + "mirror superblock (" + d.why()
                                    + "): to reuse it as a blank replica, zero its first "
                                    + MirrorAssembly.DATA_ALIGN
                                    + " bytes (dd if=/dev/zero of=PATH bs=1M count=1 conv=notrunc)"));
                case MirrorAssembly.Unreadable u ->
                    Mono.<Void>error(new MirrorReplaceException(
                            MirrorReplaceException.Reason.UNSUITABLE,
                            "the replacement (" + with + ") could not be read (" + u.why() + "): give a working one"));
            });
        }

        /**
         * Binds {@code with} to every view not in {@code bound} yet, then swaps it in under the lock if no view came
         * meanwhile (else binds the newcomers and tries again).
         */
        private Mono<Void> swap(int r, BlockBackend with, Map<MirrorBackend, BlockBackend> bound, int attempt) {
            List<MirrorBackend> unboundViews = new ArrayList<>();
            for (MirrorBackend v : views) {
                if (!bound.containsKey(v)) {
                    unboundViews.add(v);
                }
            }
            if (!unboundViews.isEmpty()) {
                if (attempt > 8) {
                    return Mono.error(new MirrorReplaceException(
                            MirrorReplaceException.Reason.NOT_NOW,
                            "queues kept " + "binding the mirror during the replace of replica " + r + ": retry"));
                }
                return Flux.fromIterable(unboundViews)
                        .concatMap(v -> with.bind(v.queue)
                                .switchIfEmpty(Mono.error(
                                        () -> new IllegalStateException(with + " bound nothing to " + v.queue)))
                                .doOnNext(b -> bound.put(v, b)))
                        .then(Mono.defer(() -> swap(r, with, bound, attempt + 1)));
            }
            Member old;
            Member next;
            synchronized (lock) {
                for (MirrorBackend v : views) {
                    if (!bound.containsKey(v)) {
                        return Mono.defer(() -> swap(r, with, bound, attempt + 1));
                    }
                }
                String notNow = notNow(r);
                if (notNow != null) {
                    return Mono.error(new MirrorReplaceException(MirrorReplaceException.Reason.NOT_NOW, notNow));
                }
                old = members.get(r);
                Resync rs = resyncs.get(r);
                if (rs != null) {
                    rs.cancel("replica " + r + " (" + old + ") was replaced during its resync");
                }
                // The state word changes first, then the seats: see enter().
                transitionLocked(r, state(r), ReplicaState.FAILED, "replaced by " + with);
                next = new Member(r, with, MirrorAssembly.newMemberId(), regions);
                next.dirty.markAll();
                fullSync.set(r, 1);
                fullResync.set(r, 0);
                crashResync.set(r, 0);
                members.set(r, next);
                unbound.seats.set(r, new Seat(next, with));
                for (MirrorBackend v : views) {
                    v.seats.set(r, new Seat(next, bound.get(v)));
                }
                retiring.add(old);
            }
            drain();
            log.info(
                    "mirror {}replica {}: {} replaces {}; full sync of {} regions",
                    mirrorId == null ? "" : mirrorId + " ",
                    r,
                    with,
                    old,
                    regions);
            reinstate(r, "replaced: full sync")
                    .subscribe(
                            null,
                            e -> log.warn(
                                    "mirror replica {}: the full sync of " + "its replacement failed: {}",
                                    r,
                                    Support.describe(e)));
            retire(old, System.nanoTime() + RETIRE_WAIT.toNanos());
            return journal == null ? Mono.empty() : journal.superblockBarrier();
        }

        /** Closes a replaced replica once nothing sent to it is left, or at {@code deadline} anyway. */
        private void retire(Member old, long deadline) {
            if (!retiring.contains(old)) {
                return; // closed with the mirror
            }
            int left = old.inFlight.get();
            boolean late = System.nanoTime() - deadline > 0;
            if (left > 0 && !late) {
                Schedulers.parallel().schedule(() -> retire(old, deadline), 10, TimeUnit.MILLISECONDS);
                return;
            }
            if (!retiring.remove(old)) {
                return;
            }
            if (late) {
                log.warn(
                        "mirror replica {}: the replaced {} still has {} requests in flight after {}; closing it "
                                + "anyway",
                        old.slot,
                        old,
                        left,
                        RETIRE_WAIT);
            }
            Support.<Void>call(old.backend::close)
                    .subscribe(
                            null,
                            e -> log.warn(
                                    "mirror replica {}: closing the replaced {} failed: {}",
                                    old.slot,
                                    old,
                                    Support.describe(e)),
                            () -> log.info("mirror replica {}: the replaced {} is closed", old.slot, old));
        }

        Mono<Void> reinstate(int r, String why) {
            Mono<Void> result;
            synchronized (lock) {
                if (closed) {
                    return Mono.error(Support.ioError(Errno.EIO, "the mirror is closed"));
                }
                ReplicaState st = state(r);
                if (st == ReplicaState.IN_SYNC) {
                    result = Mono.empty();
                } else if (st == ReplicaState.RESYNCING) {
                    result = resyncs.get(r).done.asMono();
                } else {
                    Member m = members.get(r);
                    if (fullResync.getAndSet(r, 0) != 0) {
                        fullSync.set(r, 1);
                        m.dirty.markAll();
                    }
                    Resync rs = new Resync(this, m);
                    resyncs.set(r, rs);
                    transitionLocked(
                            r,
                            ReplicaState.FAILED,
                            ReplicaState.RESYNCING,
                            why + "; " + m.dirty.count() + " dirty regions to copy");
                    rs.schedule(0);
                    result = rs.done.asMono();
                }
            }
            drain();
            return result;
        }

        /** Marks a resynced replica IN_SYNC if nothing is left to copy; whether it did. */
        boolean finishResync(int r, long copiedRegions) {
            boolean done;
            synchronized (lock) {
                Member m = members.get(r);
                // Copies first: one that ends re-marks its region before it stops counting, so the map is read after.
                done = m.copying.get() == 0
                        && skippers.get(r) == 0
                        && m.dirty.count() == 0
                        && transitionLocked(
                                r,
                                ReplicaState.RESYNCING,
                                ReplicaState.IN_SYNC,
                                "resync complete: " + copiedRegions + " regions copied");
            }
            drain();
            return done;
        }

        Mono<Void> close() {
            synchronized (lock) {
                if (closed) {
                    return Mono.empty();
                }
                closed = true;
                for (Resync rs : running) {
                    rs.cancel();
                }
            }
            BlockBackend[] toClose = new BlockBackend[n + retiring.size()];
            int k = 0;
            for (Member m : currentMembers()) {
                toClose[k++] = m.backend;
            }
            for (Member m : retiring) {
                if (k < toClose.length && retiring.remove(m)) {
                    toClose[k++] = m.backend; // replaced, its requests not all ended yet: closed with the mirror
                }
            }
            BlockBackend[] closing = Arrays.copyOf(toClose, k);
            if (journal == null) {
                return Support.closeAll(closing);
            }
            // Clear what can be cleared and mark the superblocks clean, then close; the replicas are closed even when
            // that fails (the next open then finds an unclean mirror and resyncs the bitmap's regions).
            return journal.close()
                    .doOnError(
                            e -> log.warn("mirror {}: closing its metadata failed: {}", mirrorId, Support.describe(e)))
                    .onErrorResume(e -> Mono.empty())
                    .then(Mono.fromRunnable(() -> log.info(
                            "mirror {} closed at events {}{}",
                            mirrorId,
                            journal.events(),
                            allInSync() ? ", clean" : ", degraded: " + statesText())))
                    .then(Support.closeAll(closing));
        }

        boolean allInSync() {
            for (int r = 0; r < n; r++) {
                if (state(r) != ReplicaState.IN_SYNC) {
                    return false;
                }
            }
            return true;
        }

        String statesText() {
            StringBuilder b = new StringBuilder();
            for (int r = 0; r < n; r++) {
                b.append(r == 0 ? "" : ", ").append(r).append(' ').append(state(r));
            }
            return b.toString();
        }
    }

    /** The journal's view of the mirror. */
    private record JournalHost(Shared s) implements MirrorJournal.Host {
        @Override
        public Member enterWritable(int r) {
            long st = s.states.get(r);
            if (Shared.stateOf(st) == ReplicaState.FAILED) {
                return null;
            }
            Member m = s.members.get(r);
            m.inFlight.incrementAndGet();
            if (s.states.get(r) != st) {
                m.exit();
                return null; // failing or being replaced: the next superblock round covers it
            }
            return m;
        }

        @Override
        public long memberId(int r) {
            return s.members.get(r).id;
        }

        @Override
        public boolean allInSync() {
            return s.allInSync();
        }

        @Override
        public byte role(int r) {
            return s.role(r);
        }

        @Override
        public void metadataFailed(Member m, boolean full, String reason) {
            // A torn superblock or bitmap page is harmless (two copies; the others' bitmaps), a lost cache is not.
            s.partFailed(m, full, 0, -1, reason);
        }

        @Override
        public long generation(long region) {
            return s.writes.snapshot(region);
        }

        @Override
        public boolean unchanged(long region, long generation) {
            return s.writes.unchanged(region, generation);
        }
    }

    /** The background copy of one reinstated replica's dirty regions; its steps run one after the other. */
    private static final class Resync {
        final Shared s;
        final int r;
        /** The replica it copies to: a replace of its slot ends this resync. */
        final Member target;

        final Sinks.Empty<Void> done = Sinks.empty();
        long cursor;
        long copied;
        /** The timer of the next step, or the copy in flight: what {@link #cancel} stops. */
        volatile Disposable pending;

        volatile boolean cancelled;

        Resync(Shared s, Member target) {
            this.s = s;
            this.r = target.slot;
            this.target = target;
            s.running.add(this);
            done.asMono().doFinally(sig -> s.running.remove(this)).subscribe(null, e -> {});
        }

        void schedule(long delayMillis) {
            MirrorBackend view = s.driver();
            try {
                pending = view.timers().schedule(() -> step(view), delayMillis, TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException e) {
                // The view's loop is gone (its device stopped): continue with another view, or the unbound mirror.
                if (view != s.unbound) {
                    s.views.remove(view);
                    schedule(delayMillis);
                } else {
                    abort("the resync could not be scheduled: " + e);
                }
            }
        }

        void cancel() {
            cancel("the mirror was closed during the resync of replica " + r);
        }

        void cancel(String why) {
            cancelled = true;
            Disposable d = pending;
            if (d != null) {
                d.dispose();
            }
            done.tryEmitError(Support.ioError(Errno.ECANCELED, why));
        }

        private void abort(String reason) {
            s.fail(target, reason);
            done.tryEmitError(Support.ioError(Errno.EIO, "resync of replica " + r + " failed: " + reason));
        }

        private void step(MirrorBackend view) {
            if (s.closed) {
                return;
            }
            if (view != s.driver()) {
                // Its queue ended since this step was scheduled: its bound replicas may be gone.
                schedule(0);
                return;
            }
            long dstState = s.states.get(r);
            if (Shared.stateOf(dstState) != ReplicaState.RESYNCING
                    || s.resyncs.get(r) != this
                    || s.members.get(r) != target) {
                done.tryEmitError(Support.ioError(Errno.EIO, "replica " + r + " failed again during its resync"));
                return;
            }
            int src = s.pickSource(r);
            if (src < 0) {
                abort("no in-sync replica to copy from");
                return;
            }
            long region = target.dirty.next(cursor);
            if (region < 0) {
                if (s.finishResync(r, copied)) {
                    done.tryEmitEmpty();
                    return;
                }
                // Regions with writes in flight, or writes that skipped the replica, are left: look again shortly.
                cursor = 0;
                schedule(1);
                return;
            }
            cursor = region + 1;
            long generation = s.writes.snapshot(region);
            if (generation < 0) {
                schedule(0);
                return;
            }
            long srcState = s.states.get(src);
            Seat from = Shared.stateOf(srcState) == ReplicaState.IN_SYNC ? view.enter(src, srcState) : null;
            if (from == null) {
                cursor = region;
                schedule(0); // the source changed state meanwhile: pick again
                return;
            }
            Seat to = view.enter(r, dstState);
            if (to == null) {
                from.member.exit();
                schedule(0); // this replica changed state meanwhile: the next step sees how
                return;
            }
            target.copying.incrementAndGet();
            target.dirty.clear(region);
            // Kept, so that a close stops it: its buffer is released then, even when a replica never answers.
            Disposable copying = view.copy(from, to, region)
                    .doFinally(sig -> {
                        from.member.exit();
                        to.member.exit();
                        if (sig == SignalType.CANCEL) {
                            target.copying.decrementAndGet(); // closed, or replaced: nothing of this replica matters
                        }
                    })
                    .subscribe(
                            null,
                            e -> {
                                target.dirty.mark(region, region);
                                target.copying.decrementAndGet();
                                if (e instanceof SourceFailure f) {
                                    s.fail(
                                            from.member,
                                            "read failed while resyncing replica " + r + ": "
                                                    + Support.describe(f.getCause()));
                                    schedule(0);
                                } else {
                                    abort("write of region " + region + " failed: " + Support.describe(e));
                                }
                            },
                            () -> {
                                if (s.writes.unchanged(region, generation)) {
                                    copied++;
                                    s.copied.incrementAndGet();
                                } else {
                                    // Written while it was copied: what was copied may be older than what the replica
                                    // got.
                                    target.dirty.mark(region, region);
                                }
                                target.copying.decrementAndGet();
                                schedule(0);
                            });
            if (!copying.isDisposed()) { // else it ended already, and pending is the next step's timer
                pending = copying;
                if (cancelled) {
                    copying.dispose(); // cancelled while it was being started
                }
            }
        }
    }
}

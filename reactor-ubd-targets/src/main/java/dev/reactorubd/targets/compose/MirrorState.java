package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.targets.compose.MirrorBackend.Member;
import dev.reactorubd.targets.compose.MirrorBackend.Seat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * What a mirror's unbound backend and each queue's view of it share: every replica's state and its transitions (in
 * sync, failed, resyncing; a version with each), the members of the slots and replaces, the writes in flight per region,
 * the resyncs under way, the health events, and a persistent mirror's journal. Callable from any thread: transitions
 * and membership change under {@code lock}; requests read the versioned states without it.
 */
final class MirrorState {
    private static final Logger log = LoggerFactory.getLogger(MirrorBackend.class);
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
    final AtomicReferenceArray<MirrorResync> resyncs;
    /**
     * Every resync not ended yet, the current ones and those a reinstate superseded while a copy of theirs was in
     * flight: a close stops them all, so that no copy outlives the mirror (holding its buffer).
     */
    final Set<MirrorResync> running = ConcurrentHashMap.newKeySet();

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

    MirrorState(MirrorBackend unbound, int regionBytes, BlockBackend[] replicas) {
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
                throw new IllegalArgumentException(
                        "a mirror needs every replica's size; replica " + i + " (" + replicas[i] + ") reports "
                                + (sz == BlockBackend.UNKNOWN_SIZE ? "an unknown size" : "size " + sz));
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
    MirrorState(MirrorBackend unbound, MirrorAssembly.Plan plan, MirrorOptions options, BlockBackend[] replicas) {
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
            states.set(i, (st == MirrorAssembly.Start.CURRENT ? ReplicaState.IN_SYNC : ReplicaState.FAILED).ordinal());
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
        this.journal =
                new MirrorJournal(new JournalHost(this), n, base, base.events(), plan.bitmap(), options.clearDelay());
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
            Member m = targets[i].member();
            if (members.get(m.slot) == m && state(m.slot) == ReplicaState.IN_SYNC) {
                keep = m.slot;
            }
        }
        if (keep < 0) {
            return; // none was in sync: the resyncing ones copy these regions anyway once they are marked
        }
        for (int i = 0; i < count; i++) {
            Member m = targets[i].member();
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
                            .switchIfEmpty(
                                    Mono.error(() -> new IllegalStateException(with + " bound nothing to " + v.queue)))
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
            MirrorResync rs = resyncs.get(r);
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
        retire(old, System.nanoTime() + MirrorBackend.RETIRE_WAIT.toNanos());
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
                    MirrorBackend.RETIRE_WAIT);
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
                MirrorResync rs = new MirrorResync(this, m);
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
            for (MirrorResync rs : running) {
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
                .doOnError(e -> log.warn("mirror {}: closing its metadata failed: {}", mirrorId, Support.describe(e)))
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

    /** The journal's view of the mirror. */
    private record JournalHost(MirrorState s) implements MirrorJournal.Host {
        @Override
        public Member enterWritable(int r) {
            long st = s.states.get(r);
            if (MirrorState.stateOf(st) == ReplicaState.FAILED) {
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
}

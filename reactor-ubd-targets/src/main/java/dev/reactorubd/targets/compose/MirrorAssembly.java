package dev.reactorubd.targets.compose;

import dev.reactorubd.server.BlockBackend;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Reads every replica's superblocks and decides what the mirror is: which replicas are current, which are stale (and
 * whether their resync can trust the bitmap), which are blank, or why it refuses. The decision is made from the
 * replicas alone; docs/mirror.md lists the cases. Nothing is written here.
 */
final class MirrorAssembly {
    private static final Logger log = LoggerFactory.getLogger(MirrorAssembly.class);
    /** The data area starts on a multiple of this, after the superblocks and the bitmap. */
    static final long DATA_ALIGN = 1L << 20;
    /** Bitmap reads are issued in pieces of at most this. */
    private static final int READ_CHUNK = 256 << 10;

    /** What a replica's two superblock copies say. */
    sealed interface Found {}

    /** Both copies zero: never part of a mirror. */
    record Blank() implements Found {}

    /** Unreadable (an IO error). */
    record Unreadable(String why) implements Found {}

    /** Neither copy valid and not both zero. */
    record Damaged(String why) implements Found {}

    /** The newest valid copy. */
    record Valid(Superblock sb) implements Found {}

    /** How one replica starts. */
    enum Start {
        /** Current: serves reads at once. */
        CURRENT,
        /** Current, but a write may have been in flight at a crash: its bitmap regions are copied from the primary. */
        CRASH_RESYNC,
        /** Stale: the bitmap's regions are copied to it. */
        BITMAP_RESYNC,
        /** Blank or untrusted: everything is copied to it. */
        FULL_SYNC,
        /** Could not be read: FAILED, fully resynced on reinstate. */
        FAILED
    }

    /**
     * The assembled mirror's layout and starting point.
     *
     * @param base    the superblock the others are made from (slot and roles are rewritten per replica)
     * @param created a new mirror (every replica was blank)
     * @param starts  per replica, how it starts
     * @param bitmap  the union of the bitmaps read (regions possibly written without every replica)
     * @param primary the replica resyncs copy from first
     * @param report  one line per replica, for the log
     * @param members per slot, the member id the first superblock round writes: the one on record for a replica that
     *                keeps its data, a new one for a replica that gets a full copy
     */
    record Plan(
            Superblock base,
            boolean created,
            Start[] starts,
            DirtyMap bitmap,
            int primary,
            List<String> report,
            long[] members) {}

    private MirrorAssembly() {}

    /** Reads every replica and plans the mirror; fails with {@link MirrorAssemblyException} when it must refuse. */
    static Mono<Plan> plan(BlockBackend[] replicas, MirrorOptions options) {
        return Flux.range(0, replicas.length)
                .concatMap(i -> readSuperblock(replicas[i], i))
                .collectList()
                .flatMap(found -> {
                    Plan p = decide(replicas, found, options);
                    if (p.created()) {
                        return Mono.just(p);
                    }
                    return readBitmaps(replicas, found, p).thenReturn(p);
                });
    }

    static Mono<Found> readSuperblock(BlockBackend replica, int i) {
        int len = 2 * Superblock.BYTES;
        if (replica.size() < len) {
            return Mono.error(new MirrorAssemblyException("replica " + i + " (" + replica + ") is " + replica.size()
                    + " bytes: too small to hold a mirror's superblocks, let alone data"));
        }
        return Support.<ByteBuf>call(() -> replica.read(0, len, ByteBufAllocator.DEFAULT))
                .map(buf -> {
                    try {
                        if (buf.readableBytes() != len) {
                            return (Found) new Unreadable("the read answered " + buf.readableBytes() + " bytes");
                        }
                        byte[] a = new byte[Superblock.BYTES];
                        byte[] b = new byte[Superblock.BYTES];
                        buf.getBytes(buf.readerIndex(), a);
                        buf.getBytes(buf.readerIndex() + Superblock.BYTES, b);
                        return pick(replica, i, Superblock.decode(a), Superblock.decode(b));
                    } finally {
                        buf.release();
                    }
                })
                .switchIfEmpty(Mono.fromSupplier(() -> new Unreadable("the read answered no data")))
                .onErrorResume(
                        e -> !(e instanceof MirrorAssemblyException),
                        e -> Mono.just(new Unreadable(Support.describe(e))));
    }

    /** The newer valid copy; a damaged copy beside a valid one is reported and ignored (a torn superblock write). */
    static Found pick(Object replica, int i, Superblock.Decoded a, Superblock.Decoded b) {
        Superblock sa = a instanceof Superblock.Good g ? g.sb() : null;
        Superblock sb = b instanceof Superblock.Good g ? g.sb() : null;
        if (sa != null && sb != null) {
            return new Valid(sa.events() >= sb.events() ? sa : sb);
        }
        if (sa != null || sb != null) {
            Superblock.Decoded other = sa != null ? b : a;
            if (other instanceof Superblock.Bad bad) {
                log.warn(
                        "mirror replica {} ({}): superblock copy {} is damaged ({}); using copy {}",
                        i,
                        replica,
                        sa != null ? 1 : 0,
                        bad.why(),
                        sa != null ? 0 : 1);
            }
            return new Valid(sa != null ? sa : sb);
        }
        if (a instanceof Superblock.Blank && b instanceof Superblock.Blank) {
            return new Blank();
        }
        String wa = a instanceof Superblock.Bad x ? x.why() : "blank";
        String wb = b instanceof Superblock.Bad x ? x.why() : "blank";
        return new Damaged("copy 0: " + wa + "; copy 1: " + wb);
    }

    static Plan decide(BlockBackend[] replicas, List<Found> found, MirrorOptions options) {
        int n = replicas.length;
        if (options.assumeCurrent() >= n) {
            throw new MirrorAssemblyException("--assume-current " + options.assumeCurrent() + " names no replica: the "
                    + "mirror was given " + n + " (0 to " + (n - 1) + ")");
        }
        for (int i = 0; i < n; i++) {
            if (found.get(i) instanceof Damaged d) {
                throw new MirrorAssemblyException("replica " + i + " (" + replicas[i] + ") holds data but no valid "
                        + "mirror superblock (" + d.why() + "): it is not a replica of a mirror, or its superblocks "
                        + "are destroyed. Give the right replica; or, to reuse it as a blank replica that gets a full "
                        + "copy, zero its first " + DATA_ALIGN + " bytes (dd if=/dev/zero of=PATH bs=1M count=1 "
                        + "conv=notrunc)");
            }
        }
        // The newest valid superblock speaks for the mirror.
        Superblock auth = null;
        int authAt = -1;
        for (int i = 0; i < n; i++) {
            if (found.get(i) instanceof Valid v) {
                if (auth != null && !auth.mirrorId().equals(v.sb().mirrorId())) {
                    throw new MirrorAssemblyException("replicas " + authAt + " (" + replicas[authAt] + ") and " + i
                            + " (" + replicas[i] + ") belong to different mirrors (" + auth.mirrorId() + " and "
                            + v.sb().mirrorId() + "): give the replicas of one mirror");
                }
                if (v.sb().slot() != i) {
                    throw new MirrorAssemblyException("replica " + i + " (" + replicas[i] + ") is replica "
                            + v.sb().slot() + " of mirror " + v.sb().mirrorId() + ": give the replicas in their "
                            + "order (replica 0 first)");
                }
                if (v.sb().count() != n) {
                    throw new MirrorAssemblyException("replica " + i + " (" + replicas[i] + ") belongs to mirror "
                            + v.sb().mirrorId() + " of " + v.sb().count() + " replicas, but " + n + " were given: "
                            + "give all " + v.sb().count() + " (a blank one in place of a lost one)");
                }
                if (auth == null || v.sb().events() > auth.events()) {
                    auth = v.sb();
                    authAt = i;
                }
            }
        }
        if (auth == null) {
            return create(replicas, found, options);
        }
        return reassemble(replicas, found, options, auth);
    }

    private static Plan reassemble(BlockBackend[] replicas, List<Found> found, MirrorOptions options, Superblock auth) {
        int n = replicas.length;
        long need = auth.dataOffset() + auth.dataSize();
        for (int i = 0; i < n; i++) {
            if (replicas[i].size() < need) {
                throw new MirrorAssemblyException("replica " + i + " (" + replicas[i] + ") is " + replicas[i].size()
                        + " bytes; mirror " + auth.mirrorId() + " needs " + need + " (" + auth.dataOffset()
                        + " of metadata and " + auth.dataSize() + " of data): give a replica at least that large");
            }
        }
        Start[] starts = new Start[n];
        List<String> report = new ArrayList<>();
        List<Integer> current = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Found f = found.get(i);
            byte role = auth.role(i);
            long slotMember = auth.member(i);
            int slot = i;
            String line;
            switch (f) {
                case Valid v
                when v.sb().events() == auth.events() && role == Superblock.ROLE_ACTIVE -> {
                    starts[i] = Start.CURRENT;
                    current.add(i);
                    line = "current (events " + v.sb().events() + ")";
                }
                case Valid v
                when slotMember != 0 && v.sb().member(slot) != slotMember -> {
                    // Its slot was given to another replica (a replace, or a blank one at an assembly) since it was
                    // last written: the bitmaps were cleared without it, so only a full copy makes it current.
                    starts[i] = Start.FULL_SYNC;
                    line = "replaced (events " + v.sb().events() + " of " + auth.events() + "; its slot went to "
                            + "another replica since): full sync";
                }
                case Valid v -> {
                    // Behind, or marked so by the newest superblock: the active replicas' bitmaps hold every region
                    // written since (bits are never cleared while a replica is out), unless it needs a full copy.
                    boolean full = role == Superblock.ROLE_FULL || v.sb().role(i) == Superblock.ROLE_FULL;
                    starts[i] = full ? Start.FULL_SYNC : Start.BITMAP_RESYNC;
                    line = "stale (events " + v.sb().events() + " of " + auth.events() + ", "
                            + Superblock.roleName(role) + ")" + (full ? ": full sync" : ": resync from the bitmap");
                }
                case Blank b -> {
                    starts[i] = Start.FULL_SYNC;
                    line = "blank: full sync";
                }
                case Unreadable u -> {
                    starts[i] = Start.FAILED;
                    line = "unreadable (" + u.why() + "): failed";
                }
                case Damaged d -> throw new IllegalStateException("checked above");
            }
            report.add(line);
        }
        int primary;
        int assumed = options.assumeCurrent();
        if (current.isEmpty()) {
            if (assumed < 0) {
                StringBuilder why = new StringBuilder();
                for (int i = 0; i < n; i++) {
                    why.append(i == 0 ? "" : "; ")
                            .append("replica ")
                            .append(i)
                            .append(" (")
                            .append(replicas[i])
                            .append("): ")
                            .append(report.get(i));
                }
                throw new MirrorAssemblyException("no replica of mirror " + auth.mirrorId() + " is known to be "
                        + "current (" + why + "). If you know which one holds the data to keep, start again with "
                        + "--assume-current N (MirrorOptions.assumeCurrent): every other replica then gets a full "
                        + "copy of it");
            }
            if (!(found.get(assumed) instanceof Valid)) {
                throw new MirrorAssemblyException("--assume-current " + assumed + ": replica " + assumed + " ("
                        + replicas[assumed] + ") is " + report.get(assumed) + ", it holds no data of mirror "
                        + auth.mirrorId() + ": name a replica with a superblock");
            }
            for (int i = 0; i < n; i++) {
                if (starts[i] != Start.FAILED) {
                    starts[i] = i == assumed ? Start.CURRENT : Start.FULL_SYNC;
                }
            }
            report.set(assumed, "assumed current (--assume-current " + assumed + "), was " + report.get(assumed));
            log.warn(
                    "mirror {}: no replica was current; replica {} ({}) is assumed current, the others get a full "
                            + "copy of it",
                    auth.mirrorId(),
                    assumed,
                    replicas[assumed]);
            primary = assumed;
        } else {
            if (assumed >= 0 && starts[assumed] != Start.CURRENT) {
                throw new MirrorAssemblyException("--assume-current " + assumed + ": replica " + assumed + " ("
                        + replicas[assumed] + ") is " + report.get(assumed) + " while replica " + current.get(0)
                        + " is current; its data would be lost: drop --assume-current");
            }
            primary = assumed >= 0 ? assumed : current.get(0);
            if (!auth.clean()) {
                // Not closed cleanly: a write in flight at the crash may have reached some current replicas only.
                for (int i : current) {
                    if (i != primary) {
                        starts[i] = Start.CRASH_RESYNC;
                        report.set(
                                i,
                                report.get(i) + "; not closed cleanly: the bitmap's regions are copied from "
                                        + "replica " + primary);
                    }
                }
            }
        }
        long[] members = new long[n];
        for (int i = 0; i < n; i++) {
            long own = found.get(i) instanceof Valid v ? v.sb().member(i) : 0;
            members[i] = starts[i] == Start.FULL_SYNC
                    ? newMemberId()
                    : auth.member(i) != 0 ? auth.member(i) : own != 0 ? own : newMemberId();
        }
        long regions = (auth.dataSize() + auth.regionBytes() - 1) / auth.regionBytes();
        return new Plan(auth, false, starts, new DirtyMap(regions), primary, report, members);
    }

    private static Plan create(BlockBackend[] replicas, List<Found> found, MirrorOptions options) {
        int n = replicas.length;
        long min = Long.MAX_VALUE;
        for (BlockBackend r : replicas) {
            min = Math.min(min, r.size());
        }
        int region = options.regionBytes();
        long maxRegions = (min + region - 1) / region;
        long bitmapBytes = roundUp((maxRegions + 7) / 8, Superblock.BYTES);
        long dataOffset = roundUp(Superblock.BITMAP_OFFSET + bitmapBytes, DATA_ALIGN);
        long dataSize = (min - dataOffset) / 4096 * 4096;
        if (dataSize < region) {
            throw new MirrorAssemblyException("the smallest replica is " + min + " bytes: a mirror needs "
                    + dataOffset + " bytes of metadata and at least one " + region + "-byte region of data; give "
                    + "larger replicas");
        }
        int source = Math.max(0, options.assumeCurrent());
        Start[] starts = new Start[n];
        byte[] roles = new byte[n];
        List<String> report = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            boolean unreadable = found.get(i) instanceof Unreadable;
            starts[i] = unreadable ? Start.FAILED : i == source ? Start.CURRENT : Start.FULL_SYNC;
            roles[i] = i == source ? Superblock.ROLE_ACTIVE : Superblock.ROLE_FULL;
            report.add(
                    unreadable
                            ? "unreadable: failed"
                            : i == source
                                    ? "new, the source of the initial copy"
                                    : "new: full copy of replica " + source);
        }
        if (starts[source] == Start.FAILED) {
            throw new MirrorAssemblyException("replica " + source + " (" + replicas[source] + ") of a new mirror "
                    + "could not be read: " + found.get(source) + "; fix it or give another");
        }
        long[] members = new long[n];
        for (int i = 0; i < n; i++) {
            members[i] = newMemberId();
        }
        Superblock base =
                new Superblock(randomId(), 0, 0, region, false, dataOffset, dataSize, bitmapBytes, roles, members);
        long regions = (dataSize + region - 1) / region;
        return new Plan(base, true, starts, new DirtyMap(regions), source, report, members);
    }

    /** ORs the bitmap of every replica with a valid superblock into the plan's. */
    private static Mono<Void> readBitmaps(BlockBackend[] replicas, List<Found> found, Plan p) {
        long bits = p.bitmap().size();
        int bytes = (int) ((bits + 7) / 8);
        return Flux.range(0, replicas.length)
                .filter(i -> found.get(i) instanceof Valid)
                .concatMap(i -> Flux.range(0, (bytes + READ_CHUNK - 1) / READ_CHUNK)
                        .concatMap(c -> {
                            int from = c * READ_CHUNK;
                            int len = (int) roundUp(Math.min(READ_CHUNK, bytes - from), 512);
                            return Support.<ByteBuf>call(() -> replicas[i].read(
                                            Superblock.BITMAP_OFFSET + from, len, ByteBufAllocator.DEFAULT))
                                    .doOnNext(buf -> {
                                        try {
                                            for (int k = 0; k < buf.readableBytes() && from + k < bytes; k++) {
                                                int x = buf.getUnsignedByte(buf.readerIndex() + k);
                                                for (int bit = 0; x != 0 && bit < 8; bit++, x >>>= 1) {
                                                    long b = (long) (from + k) * 8 + bit;
                                                    if ((x & 1) != 0 && b < bits) {
                                                        p.bitmap().mark(b, b);
                                                    }
                                                }
                                            }
                                        } finally {
                                            buf.release();
                                        }
                                    });
                        })
                        .then()
                        .onErrorResume(e -> {
                            // Its superblock was readable, its bitmap is not: the others' bitmaps still cover it only
                            // if it is not the only current one, so be safe and say so.
                            return Mono.error(new MirrorAssemblyException("replica " + i + " (" + replicas[i]
                                    + "): its write-intent bitmap could not be read (" + Support.describe(e)
                                    + "); fix the replica or start without it (a blank one in its place)"));
                        }))
                .then()
                .doOnSuccess(v -> {
                    if (p.bitmap().count() > 0) {
                        log.info(
                                "mirror {}: {} regions marked in the write-intent bitmap",
                                p.base().mirrorId(),
                                p.bitmap().count());
                    }
                });
    }

    /**
     * A random (version 4) UUID from ThreadLocalRandom: {@code UUID.randomUUID()} may block on the system's entropy, and
     * this runs on a replica's event loop. An id needs to be unique among a site's mirrors, not unguessable.
     */
    static UUID randomId() {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        long msb = (r.nextLong() & ~0xF000L) | 0x4000L;
        long lsb = (r.nextLong() & ~(0xC000000000000000L)) | 0x8000000000000000L;
        return new UUID(msb, lsb);
    }

    /** A non-zero random member id (0 means "not recorded"). */
    static long newMemberId() {
        long id;
        do {
            id = ThreadLocalRandom.current().nextLong();
        } while (id == 0);
        return id;
    }

    static long roundUp(long x, long unit) {
        return (x + unit - 1) / unit * unit;
    }

    static String describe(Start[] starts) {
        return Arrays.toString(starts);
    }
}

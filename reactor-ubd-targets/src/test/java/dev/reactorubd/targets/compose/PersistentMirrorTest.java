package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.await;
import static dev.reactorubd.targets.compose.TestData.awaitSettled;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Mono;

/**
 * The persistent mirror on real files: created, closed, crashed (the backends dropped without a clean close, every
 * later request to them failing, then reopened from the same files), replicas that missed writes, blank replicas,
 * replicas of two mirrors, all replicas stale, torn superblocks, and the write-intent bitmap's ordering.
 */
class PersistentMirrorTest {
    private static final int REGION = 64 * KIB;
    private static final long FILE = 8L * MIB;
    private static final MirrorOptions SLOW_CLEAR = MirrorOptions.defaults().clearDelay(Duration.ofMinutes(10));

    @TempDir
    Path dir;

    private final List<BlockBackend> toClose = new ArrayList<>();

    @AfterEach
    void cleanUp() {
        for (BlockBackend b : toClose) {
            b.close().onErrorResume(e -> Mono.empty()).block(WAIT);
        }
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** A replica file and its fault switch, so that a "crash" can cut it off. */
    private record Replica(Path path, FileBackend file, FaultyBackend faults) {}

    private Replica replica(String name) throws IOException {
        Path p = dir.resolve(name);
        if (!Files.exists(p)) {
            try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                f.setLength(FILE);
            }
        }
        FileBackend fb = FileBackend.open(p);
        toClose.add(fb);
        return new Replica(p, fb, Backends.from(fb).faults());
    }

    private static MirrorBackend assemble(MirrorOptions o, Replica... rs) {
        BlockBackend[] parts = new BlockBackend[rs.length];
        for (int i = 0; i < rs.length; i++) {
            parts[i] = rs[i].faults();
        }
        return Backends.assembleMirror(o, parts).block(WAIT);
    }

    /** A power cut: nothing more reaches the files, nothing is closed cleanly. */
    private static void crash(Replica... rs) {
        for (Replica r : rs) {
            r.faults().failAll(Errno.EIO);
        }
        for (Replica r : rs) {
            r.file().close().block(WAIT);
        }
    }

    private static void inSync(MirrorBackend m) {
        await(() -> !m.isDegraded(), "every replica in sync: " + m.states());
    }

    private static void write(MirrorBackend m, long at, byte[] data) {
        m.write(at, buf(data), false).block(WAIT);
    }

    private static byte[] read(MirrorBackend m, long at, int len) {
        ByteBuf b = m.read(at, len, ByteBufAllocator.DEFAULT).block(WAIT);
        try {
            byte[] out = new byte[len];
            b.readBytes(out);
            return out;
        } finally {
            b.release();
        }
    }

    private static byte[] onDisk(Path p, long at, int len) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "r")) {
            byte[] out = new byte[len];
            f.seek(at);
            f.readFully(out);
            return out;
        }
    }

    private static void poke(Path p, long at, byte[] data) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(at);
            f.write(data);
        }
    }

    private static Superblock superblock(Path p, int copy) throws IOException {
        Superblock.Decoded d = Superblock.decode(onDisk(p, Superblock.COPY_OFFSETS[copy], Superblock.BYTES));
        return d instanceof Superblock.Good g ? g.sb() : null;
    }

    @Test
    void blankReplicasMakeANewMirrorThatReassemblesAfterACleanClose() throws IOException {
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(SLOW_CLEAR, a, b);
        assertEquals(MIB, m.dataOffset(), "the metadata takes the first MiB");
        assertEquals(FILE - MIB, m.size());
        assertEquals(ReplicaState.IN_SYNC, m.state(0), "replica 0 is the source of a new mirror");
        inSync(m);
        assertEquals(m.size() / REGION, m.copiedRegions(), "replica 1 got a full copy of replica 0");
        write(m, 5 * REGION, bytes(1, 8 * KIB));
        UUID id = m.mirrorId();
        long events = m.events();
        m.close().block(WAIT);
        Superblock sb = superblock(b.path(), 0);
        assertEquals(id, sb.mirrorId());
        assertEquals(1, sb.slot());
        assertTrue(sb.clean(), "a clean close says so");
        assertArrayEquals(bytes(1, 8 * KIB), onDisk(b.path(), MIB + 5 * REGION, 8 * KIB), "data after the metadata");

        MirrorBackend again = assemble(SLOW_CLEAR, replica("a.img"), replica("b.img"));
        assertEquals(id, again.mirrorId(), "the same mirror, from its replicas alone");
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), again.states());
        assertTrue(again.events() > events, "the event counter moves on");
        assertEquals(0, again.copiedRegions(), "nothing to resync after a clean close");
        assertArrayEquals(bytes(1, 8 * KIB), read(again, 5 * REGION, 8 * KIB));
        again.close().block(WAIT);
    }

    @Test
    void afterACrashTheWrittenRegionsAreCopiedFromThePrimary() throws IOException {
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(SLOW_CLEAR, a, b);
        inSync(m);
        write(m, 3 * REGION, bytes(1, 4 * KIB));
        write(m, 9 * REGION - 4 * KIB, bytes(2, 8 * KIB));
        assertEquals(3, m.bitmapRegions(), "regions 3, 8 and 9 are marked");
        crash(a, b);
        // A write in flight at the crash reached replica 0 only.
        poke(a.path(), MIB + 3 * REGION, bytes(3, 4 * KIB));

        Replica a2 = replica("a.img");
        Replica b2 = replica("b.img");
        MirrorBackend again = assemble(SLOW_CLEAR, a2, b2);
        assertEquals(ReplicaState.IN_SYNC, again.state(0));
        inSync(again);
        assertEquals(3, again.copiedRegions(), "only the bitmap's regions are copied");
        assertArrayEquals(
                onDisk(a2.path(), MIB, (int) again.size()),
                onDisk(b2.path(), MIB, (int) again.size()),
                "the replicas agree");
        assertArrayEquals(bytes(3, 4 * KIB), read(again, 3 * REGION, 4 * KIB));
        again.close().block(WAIT);
    }

    @Test
    void aReplicaThatMissedWritesWhileFailedIsResyncedFromTheBitmapAfterARestart() throws IOException {
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(MirrorOptions.defaults().clearDelay(Duration.ofMillis(50)), a, b);
        inSync(m);
        for (int i = 0; i < 16; i++) {
            write(m, (long) i * REGION, bytes(i, REGION));
        }
        await(() -> m.bitmapRegions() == 0, "the bitmap cleared once every replica has the writes");
        // Cleared in memory first, its page written after: wait for the page, or a crash finds the old bits.
        await(
                () -> {
                    try {
                        return Arrays.equals(new byte[4096], onDisk(a.path(), Superblock.BITMAP_OFFSET, 4096));
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                },
                "the cleared bitmap page on disk");
        b.faults().failWrites(Errno.EIO);
        write(m, 3 * REGION, bytes(100, 4 * KIB));
        write(m, 12 * REGION, bytes(101, 4 * KIB));
        assertEquals(ReplicaState.FAILED, m.state(1));
        Thread.yield();
        assertEquals(2, m.bitmapRegions(), "no bit is cleared while a replica is out");
        Superblock sbA = superblock(a.path(), 0);
        assertEquals(Superblock.ROLE_FAILED, sbA.role(1), "the failure is on disk before the write was acknowledged");
        crash(a, b);

        Replica a2 = replica("a.img");
        Replica b2 = replica("b.img");
        // Its two regions would be copied before the state is looked at (the resync starts with the assembly): slow
        // the stale replica down so that the look comes first.
        b2.faults().delay(Duration.ofMillis(200));
        MirrorBackend again = assemble(SLOW_CLEAR, a2, b2);
        assertNotEquals(ReplicaState.IN_SYNC, again.state(1), "a stale replica serves no read until resynced");
        b2.faults().heal();
        inSync(again);
        assertEquals(2, again.copiedRegions(), "exactly the regions it missed");
        assertArrayEquals(bytes(100, 4 * KIB), onDisk(b2.path(), MIB + 3 * REGION, 4 * KIB));
        assertArrayEquals(bytes(101, 4 * KIB), onDisk(b2.path(), MIB + 12 * REGION, 4 * KIB));
        assertArrayEquals(onDisk(a2.path(), MIB, (int) again.size()), onDisk(b2.path(), MIB, (int) again.size()));
        again.close().block(WAIT);
    }

    @Test
    void aBlankReplicaAmongCurrentOnesGetsAFullCopy() throws IOException {
        MirrorBackend m = assemble(SLOW_CLEAR, replica("a.img"), replica("b.img"));
        inSync(m);
        write(m, 0, bytes(7, 256 * KIB));
        m.close().block(WAIT);
        Replica a = replica("a.img");
        Replica c = replica("c.img");
        MirrorBackend again = assemble(SLOW_CLEAR, a, c);
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.RESYNCING), again.states());
        inSync(again);
        assertEquals(again.size() / REGION, again.copiedRegions(), "every region copied");
        assertArrayEquals(bytes(7, 256 * KIB), onDisk(c.path(), MIB, 256 * KIB));
        assertEquals(m.mirrorId(), superblock(c.path(), 1).mirrorId(), "it is now a replica of the mirror");
        again.close().block(WAIT);
    }

    @Test
    void aReplicaWhoseSlotWentToABlankOneGetsAFullCopyWhenItComesBack() throws IOException {
        MirrorOptions fastClear = MirrorOptions.defaults().clearDelay(Duration.ofMillis(50));
        MirrorBackend m = assemble(fastClear, replica("a.img"), replica("b.img"));
        inSync(m);
        write(m, 0, bytes(7, 256 * KIB));
        m.close().block(WAIT);
        // b is set aside; a blank c takes its slot, gets a full copy, and writes continue with the bitmap cleared.
        MirrorBackend withC = assemble(fastClear, replica("a.img"), replica("c.img"));
        inSync(withC);
        write(withC, 5 * REGION, bytes(8, 4 * KIB));
        await(() -> withC.bitmapRegions() == 0, "the bitmap cleared");
        withC.close().block(WAIT);
        // b comes back in slot 1: it is behind by writes no bitmap remembers, so only a full copy is safe.
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend again = assemble(SLOW_CLEAR, a, b);
        inSync(again);
        assertEquals(again.size() / REGION, again.copiedRegions(), "every region copied");
        assertArrayEquals(bytes(8, 4 * KIB), onDisk(b.path(), MIB + 5 * REGION, 4 * KIB));
        assertArrayEquals(onDisk(a.path(), MIB, (int) again.size()), onDisk(b.path(), MIB, (int) again.size()));
        again.close().block(WAIT);
    }

    @Test
    void aRuntimeReplaceWritesTheReplacementsSuperblockAndTheOldReplicaGetsAFullCopyIfItComesBack() throws IOException {
        MirrorOptions fastClear = MirrorOptions.defaults().clearDelay(Duration.ofMillis(50));
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(fastClear, a, b);
        inSync(m);
        write(m, 0, bytes(1, 256 * KIB));
        Replica c = replica("c.img");
        m.replace(1, c.faults()).block(WAIT);
        Superblock onC = superblock(c.path(), 0);
        assertEquals(m.mirrorId(), onC.mirrorId(), "the replacement's superblock is on disk when replace completes");
        assertEquals(1, onC.slot());
        assertNotEquals(superblock(b.path(), 0).member(1), onC.member(1), "a new member id for the slot");
        m.reinstate(1).block(WAIT);
        assertArrayEquals(onDisk(a.path(), MIB, (int) m.size()), onDisk(c.path(), MIB, (int) m.size()));
        write(m, 9 * REGION, bytes(2, 4 * KIB));
        await(() -> m.bitmapRegions() == 0, "the bitmap cleared");
        m.close().block(WAIT);
        assertEquals(onC.member(1), superblock(a.path(), 0).member(1), "replica 0 records the replacement");

        // Reassembled with its replacement: clean, nothing to copy.
        MirrorBackend withC = assemble(SLOW_CLEAR, replica("a.img"), replica("c.img"));
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), withC.states());
        withC.close().block(WAIT);
        // Reassembled with the replaced replica: a full copy, never a resync from the (cleared) bitmap.
        Replica b2 = replica("b.img");
        MirrorBackend withB = assemble(SLOW_CLEAR, replica("a.img"), b2);
        inSync(withB);
        assertEquals(withB.size() / REGION, withB.copiedRegions());
        assertArrayEquals(bytes(2, 4 * KIB), onDisk(b2.path(), MIB + 9 * REGION, 4 * KIB));
        withB.close().block(WAIT);
    }

    @Test
    void aReplaceRefusesAReplicaOfAnotherMirrorOrOtherDataAndLeavesItUntouched() throws IOException {
        MirrorBackend other = assemble(SLOW_CLEAR, replica("x.img"), replica("y.img"));
        inSync(other);
        other.close().block(WAIT);
        byte[] xBefore = onDisk(dir.resolve("x.img"), 0, 2 * MIB);
        MirrorBackend m = assemble(SLOW_CLEAR, replica("a.img"), replica("b.img"));
        inSync(m);
        Replica x = replica("x.img");
        assertThrows(
                MirrorReplaceException.class, () -> m.replace(1, x.faults()).block(WAIT));
        assertArrayEquals(xBefore, onDisk(x.path(), 0, 2 * MIB), "the other mirror's replica is untouched");
        Replica junk = replica("junk.img");
        poke(junk.path(), 100, bytes(3, 512));
        MirrorReplaceException e = assertThrows(
                MirrorReplaceException.class, () -> m.replace(1, junk.faults()).block(WAIT));
        assertTrue(e.getMessage().contains("zero its first"), e.getMessage());
        assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), m.states());
        m.close().block(WAIT);
    }

    @Test
    void replicasOfTwoMirrorsAreRefused() throws IOException {
        assemble(SLOW_CLEAR, replica("a.img"), replica("b.img")).close().block(WAIT);
        assemble(SLOW_CLEAR, replica("c.img"), replica("d.img")).close().block(WAIT);
        MirrorAssemblyException e = assertThrows(
                MirrorAssemblyException.class, () -> assemble(SLOW_CLEAR, replica("a.img"), replica("d.img")));
        assertTrue(e.getMessage().contains("belong to different mirrors"), e.getMessage());
        MirrorAssemblyException order = assertThrows(
                MirrorAssemblyException.class, () -> assemble(SLOW_CLEAR, replica("b.img"), replica("a.img")));
        assertTrue(order.getMessage().contains("give the replicas in their order"), order.getMessage());
    }

    @Test
    void everyReplicaStaleIsRefusedUnlessOneIsAssumedCurrent() throws IOException {
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(SLOW_CLEAR, a, b);
        inSync(m);
        b.faults().failWrites(Errno.EIO);
        for (int i = 0; i < 40; i++) {
            write(m, (long) i * REGION, bytes(i, REGION));
        }
        assertEquals(ReplicaState.FAILED, m.state(1));
        // Replica 1 comes back slowly; replica 0 is lost while it is being resynced.
        b.faults().heal().delay(Duration.ofMillis(20));
        m.reinstate(1).subscribe(v -> {}, e -> {});
        await(
                () -> {
                    try {
                        Superblock sb = superblock(b.path(), 1);
                        return sb != null && sb.role(1) == Superblock.ROLE_RESYNCING;
                    } catch (IOException e) {
                        throw new AssertionError(e);
                    }
                },
                "replica 1's superblock says it is resyncing");
        crash(a, b);
        Files.delete(a.path());

        // Replica 0 replaced by a blank file: replica 1 knows it is not current; nothing else is.
        MirrorAssemblyException e = assertThrows(
                MirrorAssemblyException.class, () -> assemble(SLOW_CLEAR, replica("a.img"), replica("b.img")));
        assertTrue(
                e.getMessage().contains("is known to be current")
                        && e.getMessage().contains("--assume-current"),
                e.getMessage());
        assertEquals(null, superblock(dir.resolve("a.img"), 0), "a refusal writes nothing");

        Replica a2 = replica("a.img");
        Replica b2 = replica("b.img");
        MirrorBackend forced = assemble(SLOW_CLEAR.assumeCurrent(1), a2, b2);
        assertEquals(List.of(ReplicaState.RESYNCING, ReplicaState.IN_SYNC), forced.states());
        inSync(forced);
        assertArrayEquals(
                onDisk(b2.path(), MIB, (int) forced.size()),
                onDisk(a2.path(), MIB, (int) forced.size()),
                "replica 0 got a full copy of replica 1");
        forced.close().block(WAIT);
    }

    @Test
    void assumingAStaleReplicaCurrentWhileAnotherIsCurrentIsRefused() throws IOException {
        Replica a = replica("a.img");
        Replica b = replica("b.img");
        MirrorBackend m = assemble(SLOW_CLEAR, a, b);
        inSync(m);
        b.faults().failWrites(Errno.EIO);
        write(m, 0, bytes(1, 4 * KIB));
        assertEquals(ReplicaState.FAILED, m.state(1));
        m.close().block(WAIT);
        MirrorAssemblyException e = assertThrows(
                MirrorAssemblyException.class,
                () -> assemble(SLOW_CLEAR.assumeCurrent(1), replica("a.img"), replica("b.img")));
        assertTrue(e.getMessage().contains("drop --assume-current"), e.getMessage());
    }

    @Test
    void aTornSuperblockCopyFallsBackToTheOtherAndTwoDamagedCopiesAreRefused() throws IOException {
        MirrorBackend m = assemble(SLOW_CLEAR, replica("a.img"), replica("b.img"));
        inSync(m);
        write(m, 0, bytes(5, 4 * KIB));
        m.close().block(WAIT);
        Path b = dir.resolve("b.img");
        poke(b, 1000, new byte[] {42, 43, 44});
        assertEquals(null, superblock(b, 0), "copy 0 is damaged");
        MirrorBackend again = assemble(SLOW_CLEAR, replica("a.img"), replica("b.img"));
        assertEquals(
                List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC),
                again.states(),
                "copy 1 says the same, so nothing is stale");
        assertArrayEquals(bytes(5, 4 * KIB), read(again, 0, 4 * KIB));
        again.close().block(WAIT);
        assertTrue(superblock(b, 0) != null, "rewritten whole at the next change");

        poke(b, 1000, new byte[] {42, 43, 44});
        poke(b, Superblock.BYTES + 1000, new byte[] {42, 43, 44});
        MirrorAssemblyException e = assertThrows(
                MirrorAssemblyException.class, () -> assemble(SLOW_CLEAR, replica("a.img"), replica("b.img")));
        assertTrue(
                e.getMessage().contains("replica 1")
                        && e.getMessage().contains("bad checksum")
                        && e.getMessage().contains("zero its first"),
                e.getMessage());

        // A replica holding other data (a file system, a mirror made before superblocks) is not taken as blank.
        Path c = dir.resolve("c.img");
        replica("c.img");
        poke(c, 0, bytes(9, 4 * KIB));
        MirrorAssemblyException other = assertThrows(
                MirrorAssemblyException.class, () -> assemble(SLOW_CLEAR, replica("a.img"), replica("c.img")));
        assertTrue(other.getMessage().contains("no mirror superblock magic"), other.getMessage());
    }

    @Test
    void theBitIsOnDiskBeforeTheDataAndOnlyTheFirstWriteToACleanRegionPaysForIt() {
        TestData.Recording ra = new TestData.Recording(new MemoryBackend(FILE));
        TestData.Recording rb = new TestData.Recording(new MemoryBackend(FILE));
        // A bit is cleared one to two clear delays after its region's last write: the second write below must come
        // within that of the first, which a loaded CI machine did not always manage in 50 ms.
        MirrorBackend m = Backends.assembleMirror(MirrorOptions.defaults().clearDelay(Duration.ofSeconds(2)), ra, rb)
                .block(WAIT);
        inSync(m);
        await(() -> m.bitmapRegions() == 0, "nothing marked");
        // The bits are cleared in memory first and their page written after: count from once that write is counted
        // too (seen once: the resync's clearing page counted between the snapshot and the second write).
        awaitSettled(m::bitmapPageWrites, Duration.ofMillis(500), "the bitmap page writes");
        ra.ops.clear();
        rb.ops.clear();
        long pages = m.bitmapPageWrites();
        write(m, 7 * REGION, bytes(1, 4 * KIB));
        assertEquals(pages + 1, m.bitmapPageWrites(), "one bitmap page for the first write");
        for (TestData.Recording r : List.of(ra, rb)) {
            // A superblock round of the resync's end may still be on its way: only the bitmap and the data matter here.
            // The lazy clear of the resync's last regions may land after ops.clear() too, as a bitmap page write
            // before this write's own: so the data must come right after a bitmap write, with only those before it.
            List<TestData.Op> ops = r.ops.stream()
                    .filter(o -> o.offset() >= Superblock.BITMAP_OFFSET)
                    .toList();
            TestData.Op page = new TestData.Op("write", Superblock.BITMAP_OFFSET, 4096);
            int data = ops.indexOf(new TestData.Op("write", MIB + 7 * REGION, 4 * KIB));
            assertTrue(data >= 1, "the data, after the bit: " + ops);
            assertEquals(
                    List.of(page), ops.subList(0, data).stream().distinct().toList(), "only the bit first: " + ops);
        }
        write(m, 7 * REGION + 8 * KIB, bytes(2, 4 * KIB));
        assertEquals(pages + 1, m.bitmapPageWrites(), "a region already marked costs nothing");
        await(() -> m.bitmapRegions() == 0, "cleared lazily once every replica has it");
        Set<Long> bitmapWrites = new TreeSet<>();
        for (TestData.Op op : ra.ops) {
            if (op.offset() < MIB && op.offset() >= Superblock.BITMAP_OFFSET) {
                bitmapWrites.add(op.offset());
            }
        }
        assertEquals(Set.of(Superblock.BITMAP_OFFSET), bitmapWrites);
        m.close().block(WAIT);
    }

    @Test
    void superblocksRoundTripAndRejectWhatIsNotOne() {
        Superblock sb = new Superblock(
                UUID.randomUUID(),
                1,
                42,
                REGION,
                true,
                MIB,
                7 * MIB,
                4096,
                new byte[] {Superblock.ROLE_ACTIVE, Superblock.ROLE_FULL},
                new long[] {17, -5});
        assertEquals(new Superblock.Good(sb), Superblock.decode(sb.encode()));
        assertEquals(new Superblock.Blank(), Superblock.decode(new byte[Superblock.BYTES]));
        byte[] torn = sb.encode();
        torn[200] ^= 1;
        assertTrue(Superblock.decode(torn) instanceof Superblock.Bad bad
                && bad.why().contains("checksum"));
    }
}

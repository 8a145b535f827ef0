package dev.reactorubd.targets.rbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.LeakDetection;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/**
 * The RBD backend with the real librbd against a real one-node Ceph cluster ({@link CephTestCluster}), through the
 * test kit's device. What it wrote is checked with Ceph's own {@code rbd export}, not with the backend.
 */
class RbdBackendTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final int SIZE = 32 << 20;
    private static CephTestCluster ceph;
    private static LeakDetection leaks;
    private final List<RbdBackend> opened = new ArrayList<>();

    @TempDir
    Path dir;

    @BeforeAll
    static void cluster() throws Exception {
        ceph = CephTestCluster.get();
        leaks = LeakDetection.install();
    }

    @AfterEach
    void closeAndCheck() {
        for (RbdBackend b : opened) {
            b.close().block(WAIT);
        }
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    private RbdBackend open(RbdImageSpec spec, RbdOptions options) {
        RbdBackend b = RbdBackend.open(spec, options).block(WAIT);
        opened.add(b);
        return b;
    }

    private static byte[] read(VirtualDevice dev, int q, long offset, int length) {
        ByteBuf buf = dev.read(q, offset, length).block(WAIT);
        try {
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    /** Writes through the backend directly, with FUA; the caller of write owns its data and releases it after. */
    private static void written(RbdBackend rbd, long offset, byte[] data) {
        ByteBuf buf = Unpooled.directBuffer(data.length).writeBytes(data);
        try {
            StepVerifier.create(rbd.write(offset, buf, true)).expectComplete().verify(WAIT);
        } finally {
            buf.release();
        }
    }

    private byte[] exported(String image) throws Exception {
        Path out = dir.resolve(image + ".raw");
        ceph.rbd("export", "rbd/" + image, out.toString());
        return Files.readAllBytes(out);
    }

    @Test
    void everyOperationLandsInTheImageAsCephReadsIt() throws Exception {
        leaks.collect(); // what earlier tests left is theirs
        String name = ceph.createImage("ops", SIZE);
        RbdBackend rbd = open(ceph.admin(name), RbdOptions.defaults());
        assertEquals(SIZE, rbd.size());
        assertFalse(rbd.readOnly());
        assertEquals(
                EnumSet.of(Capability.FLUSH, Capability.FUA, Capability.DISCARD, Capability.WRITE_ZEROES),
                rbd.capabilities());
        byte[] model = new byte[SIZE];
        Random random = new Random(11);
        try (VirtualDevice dev = VirtualDevice.serve(rbd, 2, 32)) {
            // Mixed sizes, 4 KiB to 128 KiB, 32 at a time over both queues, each in a 128 KiB slot of its own.
            int slots = SIZE / (128 << 10);
            List<int[]> writes = new ArrayList<>();
            for (int i = 0; i < 160; i++) {
                int slot = i < slots ? i : random.nextInt(slots);
                int len = 4096 * (1 + random.nextInt(32));
                writes.add(new int[] {slot, len, i});
            }
            for (int from = 0; from < writes.size(); from += 32) {
                List<int[]> batch = writes.subList(from, Math.min(writes.size(), from + 32));
                // One write per slot in a batch, so that the model is the order of the batches.
                List<int[]> distinct = new ArrayList<>();
                for (int[] w : batch) {
                    if (distinct.stream().noneMatch(d -> d[0] == w[0])) {
                        distinct.add(w);
                    }
                }
                Flux.fromIterable(distinct)
                        .flatMap(
                                w -> {
                                    byte[] data = new byte[w[1]];
                                    new Random(w[2]).nextBytes(data);
                                    System.arraycopy(data, 0, model, w[0] * (128 << 10), w[1]);
                                    return dev.write(
                                            w[2] % 2,
                                            (long) w[0] * (128 << 10),
                                            Unpooled.wrappedBuffer(data),
                                            w[2] % 5 == 0);
                                },
                                32)
                        .blockLast(WAIT);
            }
            for (int slot = 0; slot < slots; slot += 7) {
                assertArrayEquals(
                        Arrays.copyOfRange(model, slot * (128 << 10), (slot + 1) * (128 << 10)),
                        read(dev, slot % 2, (long) slot * (128 << 10), 128 << 10),
                        "slot " + slot);
            }
            // WRITE_ZEROES both ways (thick with NOUNMAP, by discard without), then FLUSH.
            StepVerifier.create(rbd.writeZeroes(4096, 8192, true))
                    .expectComplete()
                    .verify(WAIT);
            StepVerifier.create(rbd.writeZeroes(4 << 20, 4 << 20, false))
                    .expectComplete()
                    .verify(WAIT);
            Arrays.fill(model, 4096, 4096 + 8192, (byte) 0);
            Arrays.fill(model, 4 << 20, 8 << 20, (byte) 0);
            assertArrayEquals(new byte[8192], read(dev, 0, 4096, 8192));
            // DISCARD of a whole 4 MiB object: librbd removes it, so it reads as zeros.
            StepVerifier.create(dev.discard(1, 12 << 20, 4 << 20))
                    .expectComplete()
                    .verify(WAIT);
            Arrays.fill(model, 12 << 20, 16 << 20, (byte) 0);
            StepVerifier.create(dev.flush(0)).expectComplete().verify(WAIT);
        }
        rbd.close().block(WAIT);
        assertArrayEquals(model, exported(name), "the image as rbd export reads it");
        Thread.sleep(200);
        assertEquals(List.of(), leaks.collect(), "buffers lost");
    }

    @Test
    void aSnapshotIsServedReadOnlyWithTheDataOfItsTime() throws Exception {
        String name = ceph.createImage("snap", 8 << 20);
        RbdBackend rw = open(ceph.admin(name), RbdOptions.defaults());
        byte[] before = new byte[65536];
        new Random(3).nextBytes(before);
        written(rw, 0, before);
        ceph.rbd("snap", "create", "rbd/" + name + "@s1");
        byte[] after = new byte[65536];
        new Random(4).nextBytes(after);
        written(rw, 0, after);

        RbdImageSpec at = RbdImageSpec.parse("rbd:rbd/" + name + "@s1?conf=" + ceph.conf);
        RbdBackend snap = open(at, RbdOptions.defaults());
        assertTrue(snap.readOnly());
        assertEquals(EnumSet.noneOf(Capability.class), snap.capabilities());
        try (VirtualDevice dev = VirtualDevice.serve(snap, 1, 8)) {
            assertArrayEquals(before, read(dev, 0, 0, 65536));
        }
        StepVerifier.create(snap.write(0, Unpooled.wrappedBuffer(new byte[4096]), false))
                .expectErrorSatisfies(e -> assertEquals(Errno.EROFS, ((UbdIoException) e).errno()))
                .verify(WAIT);
        StepVerifier.create(rw.read(0, 65536, io.netty.buffer.PooledByteBufAllocator.DEFAULT))
                .assertNext(b -> {
                    assertArrayEquals(after, ByteBufUtil.getBytes(b));
                    b.release();
                })
                .verifyComplete();
    }

    @Test
    void eachOpenFailureIsTypedAndNamesItsCause() throws Exception {
        String name = ceph.createImage("errors", 4 << 20);
        RbdOptions quick = RbdOptions.defaults();
        assertRefused(
                RbdException.Reason.NO_POOL,
                "no pool 'nopool'",
                RbdImageSpec.parse("rbd:nopool/" + name + "?conf=" + ceph.conf),
                quick);
        assertRefused(RbdException.Reason.NO_IMAGE, "has no image 'missing'", ceph.admin("missing"), quick);
        assertRefused(
                RbdException.Reason.NO_SNAPSHOT,
                "has no snapshot 'nosuch'",
                RbdImageSpec.parse("rbd:rbd/" + name + "@nosuch?conf=" + ceph.conf),
                quick);
        // client.ubd with the admin's key: the cluster refuses the key.
        assertRefused(
                RbdException.Reason.AUTHENTICATION,
                "refused client.ubd",
                RbdImageSpec.parse("rbd:rbd/" + name + "?conf=" + ceph.conf + "&id=ubd&keyring="
                        + ceph.dir.resolve("ceph.client.admin.keyring")),
                quick);
        assertRefused(
                RbdException.Reason.CONFIGURATION,
                "does not exist",
                RbdImageSpec.parse("rbd:rbd/" + name + "?conf=" + dir.resolve("none.conf")),
                quick);
        // A configuration whose monitor listens nowhere: no monitor answers within the connect timeout.
        Path nowhere = dir.resolve("nowhere.conf");
        Files.writeString(nowhere, "[global]\nmon host = v2:127.0.0.1:9\n");
        long t0 = System.nanoTime();
        assertRefused(
                RbdException.Reason.UNREACHABLE,
                "monitor",
                RbdImageSpec.parse("rbd:rbd/" + name + "?conf=" + nowhere + "&keyring="
                        + ceph.dir.resolve("ceph.client.admin.keyring")),
                quick.withConnectTimeout(Duration.ofSeconds(3)));
        assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(20).toNanos(), "the open is bounded");
        // The least-privileged client of pool rbd opens it, and is refused another pool's.
        RbdBackend least = open(ceph.client(name), quick);
        assertEquals(4 << 20, least.size());
        assertThrows(IllegalArgumentException.class, () -> RbdImageSpec.parse("rbd:pool-only"));
    }

    private static void assertRefused(RbdException.Reason reason, String text, RbdImageSpec spec, RbdOptions o) {
        RbdException e =
                assertThrows(RbdException.class, () -> RbdBackend.open(spec, o).block(WAIT));
        System.out.println("rbd: refused as " + e.reason() + ": " + e.getMessage());
        assertEquals(reason, e.reason(), e.getMessage());
        assertTrue(e.getMessage().contains(text), e.getMessage());
        assertTrue(e.getMessage().contains(spec.pool() + "/" + spec.image()), e.getMessage());
    }

    @Test
    void aResizeOfTheImageIsSeenWhileServed() throws Exception {
        String name = ceph.createImage("resize", 8 << 20);
        RbdBackend rbd = open(ceph.admin(name), RbdOptions.defaults());
        StepVerifier.create(rbd.sizeChanges().take(1))
                .then(() -> {
                    try {
                        ceph.rbd("resize", "--size", "24M", "rbd/" + name);
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                })
                .expectNext(24L << 20)
                .verifyComplete();
        assertEquals(24L << 20, rbd.size());
        byte[] tail = new byte[4096];
        Arrays.fill(tail, (byte) 0x3c);
        written(rbd, (24L << 20) - 4096, tail);
    }

    @Test
    void aStoppedOsdFailsRequestsAtTheTimeoutAndServiceResumesWhenItIsBack() throws Exception {
        String name = ceph.createImage("osd", 16 << 20);
        RbdBackend rbd = open(ceph.admin(name), RbdOptions.defaults().withOsdTimeout(Duration.ofSeconds(3)));
        byte[] data = new byte[65536];
        new Random(5).nextBytes(data);
        written(rbd, 0, data);
        ceph.stopOsd();
        try {
            long t0 = System.nanoTime();
            // Written, so its object exists (the object map would answer a hole by itself), and never read: librbd's
            // default cache (write-around) holds no reads, so the read needs the OSD.
            StepVerifier.create(rbd.read(4096, 4096, io.netty.buffer.PooledByteBufAllocator.DEFAULT))
                    .expectErrorSatisfies(
                            e -> assertEquals(Errno.ETIMEDOUT, ((UbdIoException) e).errno(), e.getMessage()))
                    .verify(WAIT);
            long took = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(took >= 2_500 && took < 40_000, "failed after " + took + " ms");
        } finally {
            ceph.startOsd();
        }
        StepVerifier.create(rbd.read(0, 65536, io.netty.buffer.PooledByteBufAllocator.DEFAULT))
                .assertNext(b -> {
                    assertArrayEquals(data, ByteBufUtil.getBytes(b));
                    b.release();
                })
                .expectComplete()
                .verify(WAIT);
        written(rbd, 8 << 20, data);
    }

    @Test
    void aClosedBackendRefusesRequestsAndClosesOnce() throws Exception {
        String name = ceph.createImage("closed", 4 << 20);
        RbdBackend rbd = open(ceph.admin(name), RbdOptions.defaults());
        rbd.close().block(WAIT);
        rbd.close().block(WAIT);
        StepVerifier.create(rbd.read(0, 4096, io.netty.buffer.PooledByteBufAllocator.DEFAULT))
                .expectErrorSatisfies(e -> assertEquals(Errno.ESHUTDOWN, ((UbdIoException) e).errno()))
                .verify(WAIT);
        assertEquals(0, rbd.inFlight());
    }

    /**
     * The librados clients of this process: each runs its messenger's threads, the first named {@code msgr-worker-0}
     * (librados names its native threads; the JVM does not see them).
     */
    private static long radosClients() throws Exception {
        long n = 0;
        try (var tasks = Files.list(Path.of("/proc/self/task"))) {
            for (Path t : tasks.toList()) {
                try {
                    if (Files.readString(t.resolve("comm")).strip().equals("msgr-worker-0")) {
                        n++;
                    }
                } catch (java.io.IOException gone) {
                    // the thread ended while listed
                }
            }
        }
        return n;
    }

    private static long radosClientsSettled(long expected) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        long n;
        while ((n = radosClients()) != expected && System.nanoTime() < deadline) {
            Thread.sleep(50); // rados_shutdown joins its threads, but the kernel reaps them a moment later
        }
        return n;
    }

    @Test
    void imagesOfOneClientShareOneClusterConnection() throws Exception {
        for (RbdBackend b : opened) {
            b.close().block(WAIT);
        }
        opened.clear();
        long before = radosClients();
        String a = ceph.createImage("share-a", 4 << 20);
        String b = ceph.createImage("share-b", 4 << 20);
        RbdBackend first = open(ceph.admin(a), RbdOptions.defaults());
        RbdBackend second = open(ceph.admin(b), RbdOptions.defaults());
        ceph.rbd("snap", "create", "rbd/" + a + "@s1");
        RbdBackend third = open(ceph.admin(a + "@s1"), RbdOptions.defaults());
        assertEquals(before + 1, radosClientsSettled(before + 1), "three images of client.admin, one client");
        // Other options are another client: librados applies its timeouts per client.
        RbdBackend other = open(ceph.admin(b), RbdOptions.defaults().withOsdTimeout(Duration.ofSeconds(7)));
        assertEquals(before + 2, radosClientsSettled(before + 2), "other options, another client");
        // Each still works on its own image while the others close.
        byte[] data = new byte[8192];
        new Random(11).nextBytes(data);
        first.close().block(WAIT);
        written(second, 0, data);
        third.close().block(WAIT);
        written(other, 8192, data);
        assertArrayEquals(data, Arrays.copyOfRange(exported(b), 8192, 16384));
        second.close().block(WAIT);
        assertEquals(before + 1, radosClientsSettled(before + 1), "the last image of a client shuts it down");
        other.close().block(WAIT);
        assertEquals(before, radosClientsSettled(before), "every client shut down");
        // And a client shut down connects again for the next image.
        RbdBackend again = open(ceph.admin(a), RbdOptions.defaults());
        written(again, 0, data);
        assertArrayEquals(data, Arrays.copyOfRange(exported(a), 0, 8192));
    }
}

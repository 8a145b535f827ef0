package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.InvalidDeviceSpecException;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.sys.UblkParams;
import dev.reactorubd.testing.Cases;
import dev.reactorubd.testing.Gen;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Whatever a caller gives the builder, {@link DeviceSpec.Builder#build()} either returns a spec the kernel can take
 * (every limit holds, and its {@code ublk_params} encode and decode to the same values) or refuses one field with
 * {@link InvalidDeviceSpecException}, naming the field and saying why; never another exception.
 */
class DeviceSpecProperties {

    /** What a caller gives the builder; capacity {@code Long.MIN_VALUE}: not set at all. */
    record Input(
            int id,
            int queues,
            int depth,
            int logical,
            int physical,
            long capacity,
            long maxIo,
            boolean readOnly,
            boolean rotational,
            boolean volatileCache,
            boolean fua,
            DeviceSpec.Discard discard,
            Set<UblkFeature> features) {}

    static final Gen<Input> INPUTS = r -> new Input(
            deviceIds().next(r),
            counts().next(r),
            counts().next(r),
            blockSizes().next(r),
            physicalSizes().next(r),
            capacities().next(r),
            ioSizes().next(r),
            rarely().next(r),
            r.nextBoolean(),
            r.nextBoolean(),
            rarely().next(r),
            discards().next(r),
            features().next(r));

    @Test
    void buildsAValidSpecOrRefusesOneFieldWithAReason() {
        AtomicInteger valid = new AtomicInteger();
        Cases.forAll(300, INPUTS, in -> {
            DeviceSpec.Builder b = DeviceSpec.builder()
                    .deviceId(in.id())
                    .queues(in.queues())
                    .depth(in.depth())
                    .logicalBlockSize(in.logical())
                    .physicalBlockSize(in.physical())
                    .maxIoBytes(in.maxIo())
                    .readOnly(in.readOnly())
                    .rotational(in.rotational())
                    .volatileCache(in.volatileCache())
                    .fua(in.fua())
                    .discard(in.discard())
                    .features(in.features());
            if (in.capacity() != Long.MIN_VALUE) {
                b.capacityBytes(in.capacity());
            }
            DeviceSpec spec;
            try {
                spec = b.build();
            } catch (InvalidDeviceSpecException e) {
                assertNotNull(e.field(), "the refused field is named");
                assertTrue(e.getMessage().startsWith(e.field() + ": "), e.getMessage());
                assertTrue(e.getMessage().length() > e.field().length() + 10, "and why: " + e.getMessage());
                return;
            }
            valid.incrementAndGet();
            assertValid(spec);
            assertEquals(spec.toString(), spec.toBuilder().build().toString(), "a spec rebuilds to itself");
        });
        System.out.println("device specs: " + valid + " of 300 valid");
    }

    /** Both outcomes are exercised: the property would hold vacuously if every spec were refused. */
    @Test
    void aGoodShareOfTheGeneratedSpecsIsValid() {
        int tries = 300;
        AtomicInteger valid = new AtomicInteger();
        Cases.forAll(tries, INPUTS, in -> {
            try {
                DeviceSpec.builder()
                        .deviceId(in.id())
                        .queues(in.queues())
                        .depth(in.depth())
                        .logicalBlockSize(in.logical())
                        .capacityBytes(in.capacity())
                        .maxIoBytes(in.maxIo())
                        .build();
                valid.incrementAndGet();
            } catch (InvalidDeviceSpecException e) {
                // counted below
            }
        });
        assertTrue(valid.get() > tries / 10, "more than 10% valid: " + valid + " of " + tries);
        assertTrue(
                tries - valid.get() > tries / 10, "more than 10% refused: " + (tries - valid.get()) + " of " + tries);
    }

    private static void assertValid(DeviceSpec s) {
        assertTrue(
                s.deviceId() == DeviceSpec.AUTO_ID || (s.deviceId() >= 0 && s.deviceId() < DeviceSpec.MAX_DEVICE_IDS),
                s.toString());
        assertTrue(s.queues() >= 1 && s.queues() <= DeviceSpec.MAX_QUEUES, s.toString());
        assertTrue(s.depth() >= 1 && s.depth() <= DeviceSpec.MAX_DEPTH, s.toString());
        assertTrue(Set.of(512, 1024, 2048, 4096).contains(s.logicalBlockSize()), s.toString());
        assertTrue(Set.of(512, 1024, 2048, 4096).contains(s.physicalBlockSize()), s.toString());
        assertTrue(s.physicalBlockSize() >= s.logicalBlockSize(), s.toString());
        assertTrue(s.capacityBytes() > 0 && s.capacityBytes() % s.logicalBlockSize() == 0, s.toString());
        assertTrue(
                s.maxIoBytes() >= 4096 && s.maxIoBytes() <= UblkIo.MAX_IO_BYTES && s.maxIoBytes() % 4096 == 0,
                s.toString());
        assertFalse(s.fua() && !s.volatileCache(), s.toString());
        assertTrue(s.features().contains(UblkFeature.USER_COPY), s.toString());
        if (s.discard() != null) {
            assertFalse(s.readOnly(), s.toString());
        }
        // The kernel gets what the spec says: the struct round-trips.
        DeviceParams params = DeviceParams.of(s);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(UblkParams.SIZE);
            params.write(m);
            DeviceParams back = DeviceParams.read(m);
            assertEquals(params, back, s.toString());
        }
    }

    // Each value: mostly in range (so that whole valid specs come up), then the edges, then anything.

    static Gen<Integer> deviceIds() {
        return mostly(
                Gen.ints(DeviceSpec.AUTO_ID, DeviceSpec.MAX_DEVICE_IDS - 1),
                Gen.of(
                        DeviceSpec.AUTO_ID,
                        -2,
                        0,
                        DeviceSpec.MAX_DEVICE_IDS - 1,
                        DeviceSpec.MAX_DEVICE_IDS,
                        Integer.MIN_VALUE,
                        Integer.MAX_VALUE),
                Gen.anyInt());
    }

    static Gen<Integer> counts() {
        return mostly(
                Gen.ints(1, DeviceSpec.MAX_DEPTH),
                Gen.of(
                        -1,
                        0,
                        1,
                        DeviceSpec.MAX_QUEUES,
                        DeviceSpec.MAX_QUEUES + 1,
                        DeviceSpec.MAX_DEPTH,
                        DeviceSpec.MAX_DEPTH + 1),
                Gen.anyInt());
    }

    static Gen<Integer> blockSizes() {
        return mostly(Gen.of(512, 1024, 2048, 4096), Gen.of(0, 256, 513, 8192, -512), Gen.anyInt());
    }

    static Gen<Integer> physicalSizes() {
        return Gen.oneOf(Gen.just(0), Gen.just(4096), blockSizes());
    }

    static Gen<Long> capacities() {
        return mostly(
                Gen.longs(1, 1L << 40).map(n -> n * 4096),
                Gen.of(Long.MIN_VALUE, -1L, 0L, 1L, 511L, 512L, 4095L, Long.MAX_VALUE, Long.MAX_VALUE / 4096 * 4096),
                Gen.anyLong());
    }

    static Gen<Long> ioSizes() {
        return mostly(
                Gen.longs(1, UblkIo.MAX_IO_BYTES / 4096).map(n -> n * 4096),
                Gen.of(
                        0L,
                        512L,
                        4095L,
                        (long) DeviceSpec.DEFAULT_MAX_IO_BYTES,
                        (long) UblkIo.MAX_IO_BYTES,
                        UblkIo.MAX_IO_BYTES + 4096L,
                        -4096L),
                Gen.anyLong());
    }

    static Gen<Boolean> rarely() {
        return Gen.<Boolean>weighted().value(4, false).value(1, true);
    }

    static Gen<DeviceSpec.Discard> discards() {
        Gen<Long> sizes = mostly(
                Gen.longs(0, 1 << 16).map(n -> n * 4096),
                Gen.of(-512L, 0L, 1L, 512L, 0xFFFF_FFFFL, 0xFFFF_FFFFL * 512, 0x1_0000_0000L * 512, Long.MAX_VALUE),
                Gen.anyLong());
        Gen<DeviceSpec.Discard> discard =
                r -> new DeviceSpec.Discard(sizes.next(r), sizes.next(r), sizes.next(r), sizes.next(r));
        return discard.orNull(0.3);
    }

    static Gen<Set<UblkFeature>> features() {
        return Gen.<Set<UblkFeature>>weighted()
                .add(3, Gen.just(Set.of()))
                .add(
                        2,
                        Gen.of(
                                        UblkFeature.USER_RECOVERY,
                                        UblkFeature.USER_RECOVERY_REISSUE,
                                        UblkFeature.UPDATE_SIZE,
                                        UblkFeature.QUIESCE)
                                .set(3))
                .add(2, Gen.of(UblkFeature.class).set(5));
    }

    private static <T> Gen<T> mostly(Gen<T> valid, Gen<T> edges, Gen<T> anything) {
        return Gen.<T>weighted().add(12, valid).add(1, edges).add(1, anything);
    }
}

package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.InvalidDeviceSpecException;
import dev.reactorubd.sys.UblkFeature;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.sys.UblkParams;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Set;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/**
 * Whatever a caller gives the builder, {@link DeviceSpec.Builder#build()} either returns a spec the kernel can take
 * (every limit holds, and its {@code ublk_params} encode and decode to the same values) or refuses one field with
 * {@link InvalidDeviceSpecException}, naming the field and saying why; never another exception.
 */
class DeviceSpecProperties {

    @Property(tries = 300)
    void buildsAValidSpecOrRefusesOneFieldWithAReason(
            @ForAll("deviceIds") int id, @ForAll("counts") int queues, @ForAll("counts") int depth,
            @ForAll("blockSizes") int logical, @ForAll("physicalSizes") int physical,
            @ForAll("capacities") long capacity, @ForAll("ioSizes") long maxIo,
            @ForAll("rarely") boolean readOnly, @ForAll boolean rotational, @ForAll boolean volatileCache,
            @ForAll("rarely") boolean fua,
            @ForAll("discards") DeviceSpec.Discard discard,
            @ForAll("features") Set<UblkFeature> features) {
        DeviceSpec.Builder b = DeviceSpec.builder().deviceId(id).queues(queues).depth(depth)
                .logicalBlockSize(logical).physicalBlockSize(physical).maxIoBytes(maxIo).readOnly(readOnly)
                .rotational(rotational).volatileCache(volatileCache).fua(fua).discard(discard).features(features);
        if (capacity != Long.MIN_VALUE) { // MIN_VALUE: capacity not set at all
            b.capacityBytes(capacity);
        }
        DeviceSpec spec;
        try {
            spec = b.build();
        } catch (InvalidDeviceSpecException e) {
            assertNotNull(e.field(), "the refused field is named");
            assertTrue(e.getMessage().startsWith(e.field() + ": "), e.getMessage());
            assertTrue(e.getMessage().length() > e.field().length() + 10, "and why: " + e.getMessage());
            Statistics.label("outcome").collect("refused");
            return;
        }
        Statistics.label("outcome").collect("valid");
        assertValid(spec);
        assertEquals(spec.toString(), spec.toBuilder().build().toString(), "a spec rebuilds to itself");
    }

    /** Both outcomes are exercised: the property would hold vacuously if every spec were refused. */
    @Property(tries = 300)
    void aGoodShareOfTheGeneratedSpecsIsValid(
            @ForAll("deviceIds") int id, @ForAll("counts") int queues, @ForAll("counts") int depth,
            @ForAll("blockSizes") int logical, @ForAll("capacities") long capacity, @ForAll("ioSizes") long maxIo) {
        boolean valid;
        try {
            DeviceSpec.builder().deviceId(id).queues(queues).depth(depth).logicalBlockSize(logical)
                    .capacityBytes(capacity).maxIoBytes(maxIo).build();
            valid = true;
        } catch (InvalidDeviceSpecException e) {
            valid = false;
        }
        Statistics.collect(valid);
        Statistics.coverage(c -> {
            c.check(true).percentage(p -> p > 10);
            c.check(false).percentage(p -> p > 10);
        });
    }

    private static void assertValid(DeviceSpec s) {
        assertTrue(s.deviceId() == DeviceSpec.AUTO_ID
                || (s.deviceId() >= 0 && s.deviceId() < DeviceSpec.MAX_DEVICE_IDS), s.toString());
        assertTrue(s.queues() >= 1 && s.queues() <= DeviceSpec.MAX_QUEUES, s.toString());
        assertTrue(s.depth() >= 1 && s.depth() <= DeviceSpec.MAX_DEPTH, s.toString());
        assertTrue(Set.of(512, 1024, 2048, 4096).contains(s.logicalBlockSize()), s.toString());
        assertTrue(Set.of(512, 1024, 2048, 4096).contains(s.physicalBlockSize()), s.toString());
        assertTrue(s.physicalBlockSize() >= s.logicalBlockSize(), s.toString());
        assertTrue(s.capacityBytes() > 0 && s.capacityBytes() % s.logicalBlockSize() == 0, s.toString());
        assertTrue(s.maxIoBytes() >= 4096 && s.maxIoBytes() <= UblkIo.MAX_IO_BYTES && s.maxIoBytes() % 4096 == 0,
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

    @Provide
    Arbitrary<Integer> deviceIds() {
        return mostly(Arbitraries.integers().between(DeviceSpec.AUTO_ID, DeviceSpec.MAX_DEVICE_IDS - 1),
                Arbitraries.of(DeviceSpec.AUTO_ID, -2, 0, DeviceSpec.MAX_DEVICE_IDS - 1, DeviceSpec.MAX_DEVICE_IDS,
                        Integer.MIN_VALUE, Integer.MAX_VALUE),
                Arbitraries.integers());
    }

    @Provide
    Arbitrary<Integer> counts() {
        return mostly(Arbitraries.integers().between(1, DeviceSpec.MAX_DEPTH),
                Arbitraries.of(-1, 0, 1, DeviceSpec.MAX_QUEUES, DeviceSpec.MAX_QUEUES + 1, DeviceSpec.MAX_DEPTH,
                        DeviceSpec.MAX_DEPTH + 1),
                Arbitraries.integers());
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return mostly(Arbitraries.of(512, 1024, 2048, 4096), Arbitraries.of(0, 256, 513, 8192, -512),
                Arbitraries.integers());
    }

    @Provide
    Arbitrary<Integer> physicalSizes() {
        return Arbitraries.oneOf(Arbitraries.just(0), Arbitraries.just(4096), blockSizes());
    }

    @Provide
    Arbitrary<Long> capacities() {
        return mostly(Arbitraries.longs().between(1, 1L << 40).map(n -> n * 4096),
                Arbitraries.of(Long.MIN_VALUE, -1L, 0L, 1L, 511L, 512L, 4095L, Long.MAX_VALUE,
                        Long.MAX_VALUE / 4096 * 4096),
                Arbitraries.longs());
    }

    @Provide
    Arbitrary<Long> ioSizes() {
        return mostly(Arbitraries.longs().between(1, UblkIo.MAX_IO_BYTES / 4096).map(n -> n * 4096),
                Arbitraries.of(0L, 512L, 4095L, DeviceSpec.DEFAULT_MAX_IO_BYTES, UblkIo.MAX_IO_BYTES,
                        UblkIo.MAX_IO_BYTES + 4096L, -4096L),
                Arbitraries.longs());
    }

    @Provide
    Arbitrary<Boolean> rarely() {
        return Arbitraries.frequency(Tuple.of(4, false), Tuple.of(1, true));
    }

    @Provide
    Arbitrary<DeviceSpec.Discard> discards() {
        Arbitrary<Long> sizes = mostly(Arbitraries.longs().between(0, 1 << 16).map(n -> n * 4096),
                Arbitraries.of(-512L, 0L, 1L, 512L, 0xFFFF_FFFFL, 0xFFFF_FFFFL * 512, 0x1_0000_0000L * 512,
                        Long.MAX_VALUE),
                Arbitraries.longs());
        return Combinators.combine(sizes, sizes, sizes, sizes).as(DeviceSpec.Discard::new).injectNull(0.3);
    }

    @Provide
    Arbitrary<Set<UblkFeature>> features() {
        return Arbitraries.frequencyOf(Tuple.of(3, Arbitraries.just(Set.of())),
                Tuple.of(2, Arbitraries.of(UblkFeature.USER_RECOVERY, UblkFeature.USER_RECOVERY_REISSUE,
                        UblkFeature.UPDATE_SIZE, UblkFeature.QUIESCE).set().ofMaxSize(3)),
                Tuple.of(2, Arbitraries.of(UblkFeature.class).set().ofMaxSize(5)));
    }

    private static <T> Arbitrary<T> mostly(Arbitrary<T> valid, Arbitrary<T> edges, Arbitrary<T> anything) {
        return Arbitraries.frequencyOf(Tuple.of(12, valid), Tuple.of(1, edges), Tuple.of(1, anything));
    }
}

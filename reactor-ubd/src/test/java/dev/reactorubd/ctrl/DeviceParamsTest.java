package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.sys.UblkParams;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** What SET_PARAMS sends for a spec, byte for byte where it matters, and how GET_PARAMS is read back. */
class DeviceParamsTest {

    @Test
    void specBecomesTheKernelsStruct() {
        DeviceSpec spec = DeviceSpec.builder()
                .capacityBytes(1L << 30)
                .logicalBlockSize(512)
                .physicalBlockSize(4096)
                .maxIoBytes(1 << 20)
                .volatileCache(true)
                .fua(true)
                .rotational(true)
                .discard(new DeviceSpec.Discard(4096, 0, 1 << 20, 2 << 20))
                .build();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(UblkParams.SIZE);
            DeviceParams.of(spec).write(s);
            assertEquals(152, UblkParams.len(s));
            assertEquals(UblkParams.TYPE_BASIC | UblkParams.TYPE_DISCARD, UblkParams.types(s));
            assertEquals(
                    UblkParams.ATTR_VOLATILE_CACHE | UblkParams.ATTR_FUA | UblkParams.ATTR_ROTATIONAL,
                    UblkParams.attrs(s));
            assertEquals(9, UblkParams.logicalBsShift(s));
            assertEquals(12, UblkParams.physicalBsShift(s));
            assertEquals(2048, UblkParams.maxSectors(s));
            assertEquals((1L << 30) / 512, UblkParams.devSectors(s));
            assertEquals(4096, UblkParams.discardGranularity(s));
            assertEquals(2048, UblkParams.maxDiscardSectors(s));
            assertEquals(4096, UblkParams.maxWriteZeroesSectors(s));
            assertEquals(1, UblkParams.maxDiscardSegments(s));
            // The raw bytes at the header's offsets, independent of the accessors.
            assertEquals(9, s.get(ValueLayout.JAVA_BYTE, 12));
            assertEquals((1L << 30) / 512, s.get(ValueLayout.JAVA_LONG, 24));
            assertEquals(1, s.get(ValueLayout.JAVA_SHORT, 56));

            DeviceParams back = DeviceParams.read(s);
            assertEquals(512, back.logicalBlockSize());
            assertEquals(4096, back.physicalBlockSize());
            assertEquals(1L << 30, back.capacityBytes());
            assertEquals(1 << 20, back.maxIoBytes());
            assertEquals(spec.discard(), back.discard());
            assertEquals("", back.diskDevice());
        }
    }

    @Test
    void noDiscardMeansNoDiscardPart() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(UblkParams.SIZE);
            DeviceParams.of(DeviceSpec.builder()
                            .capacityBytes(4096)
                            .readOnly(true)
                            .build())
                    .write(s);
            assertEquals(UblkParams.TYPE_BASIC, UblkParams.types(s));
            assertEquals(UblkParams.ATTR_READ_ONLY, UblkParams.attrs(s));
            assertEquals(null, DeviceParams.read(s).discard());
        }
    }
}

package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.InvalidDeviceSpecException;
import java.util.EnumSet;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class DeviceSpecTest {

    static DeviceSpec.Builder valid() {
        return DeviceSpec.builder().capacityBytes(64L << 20);
    }

    /** Every refusal: the builder change, the field it must name, and a word of the reason. */
    static Stream<Arguments> invalidSpecs() {
        return Stream.of(
                invalid("queues 0", b -> b.queues(0), "queues", "1 to 4096"),
                invalid("queues 4097", b -> b.queues(4097), "queues", "1 to 4096"),
                invalid("depth 0", b -> b.depth(0), "depth", "1 to 4096"),
                invalid("depth 4097", b -> b.depth(4097), "depth", "1 to 4096"),
                invalid("block 256", b -> b.logicalBlockSize(256), "logicalBlockSize", "power of two"),
                invalid("block 8192", b -> b.logicalBlockSize(8192), "logicalBlockSize", "power of two"),
                invalid("block 1000", b -> b.logicalBlockSize(1000), "logicalBlockSize", "power of two"),
                invalid("physical 3000", b -> b.physicalBlockSize(3000), "physicalBlockSize", "power of two"),
                invalid(
                        "physical < logical",
                        b -> b.logicalBlockSize(4096).physicalBlockSize(512),
                        "physicalBlockSize",
                        "logical"),
                invalid("no capacity", b -> DeviceSpec.builder(), "capacityBytes", "required"),
                invalid("capacity 0", b -> b.capacityBytes(0), "capacityBytes", "positive multiple"),
                invalid("capacity negative", b -> b.capacityBytes(-4096), "capacityBytes", "positive multiple"),
                invalid(
                        "capacity not a multiple",
                        b -> b.logicalBlockSize(4096).capacityBytes(4096 * 10 + 512),
                        "capacityBytes",
                        "multiple"),
                invalid("maxIo too small", b -> b.maxIoBytes(2048), "maxIoBytes", "4096"),
                invalid("maxIo too large", b -> b.maxIoBytes(64L << 20), "maxIoBytes", "32 MiB"),
                invalid("maxIo unaligned", b -> b.maxIoBytes(4096 + 512), "maxIoBytes", "multiple of 4096"),
                invalid("device id", b -> b.deviceId(1 << 20), "deviceId", "0 to"),
                invalid("device id negative", b -> b.deviceId(-2), "deviceId", "AUTO_ID"),
                invalid("fua without cache", b -> b.fua(true), "fua", "volatileCache"),
                invalid(
                        "discard granularity",
                        b -> b.discard(new DeviceSpec.Discard(0, 0, 1 << 20, 0)),
                        "discard.granularityBytes",
                        "positive multiple"),
                invalid(
                        "discard granularity unaligned",
                        b -> b.logicalBlockSize(4096).discard(new DeviceSpec.Discard(512, 0, 1 << 20, 0)),
                        "discard.granularityBytes",
                        "positive multiple"),
                invalid(
                        "discard alignment",
                        b -> b.discard(new DeviceSpec.Discard(4096, 4096, 1 << 20, 0)),
                        "discard.alignmentBytes",
                        "below the granularity"),
                invalid(
                        "discard max unaligned",
                        b -> b.discard(new DeviceSpec.Discard(4096, 0, 1000, 0)),
                        "discard.maxDiscardBytes",
                        "multiple of 512"),
                invalid("discard nothing", b -> b.discard(new DeviceSpec.Discard(4096, 0, 0, 0)), "discard", "neither"),
                invalid(
                        "discard on read-only",
                        b -> b.readOnly(true).discard(new DeviceSpec.Discard(4096, 0, 4096, 0)),
                        "discard",
                        "read-only"),
                invalid("unprivileged", b -> b.feature(UblkFeature.UNPRIVILEGED_DEV), "features", "CAP_SYS_ADMIN"),
                invalid("zero copy", b -> b.feature(UblkFeature.SUPPORT_ZERO_COPY), "features", "USER_COPY"),
                invalid("need get data", b -> b.feature(UblkFeature.NEED_GET_DATA), "features", "USER_COPY"),
                invalid("zoned", b -> b.feature(UblkFeature.ZONED), "features", "zoned"),
                invalid(
                        "reissue alone",
                        b -> b.feature(UblkFeature.USER_RECOVERY_REISSUE),
                        "features",
                        "needs USER_RECOVERY"),
                invalid(
                        "fail-io alone",
                        b -> b.feature(UblkFeature.USER_RECOVERY_FAIL_IO),
                        "features",
                        "needs USER_RECOVERY"),
                invalid(
                        "reissue and fail-io",
                        b -> b.features(EnumSet.of(
                                UblkFeature.USER_RECOVERY,
                                UblkFeature.USER_RECOVERY_REISSUE,
                                UblkFeature.USER_RECOVERY_FAIL_IO)),
                        "features",
                        "exclude each other"),
                invalid("quiesce alone", b -> b.feature(UblkFeature.QUIESCE), "features", "needs USER_RECOVERY"));
    }

    private static Arguments invalid(
            String name, UnaryOperator<DeviceSpec.Builder> change, String field, String reason) {
        return Arguments.of(name, change, field, reason);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("invalidSpecs")
    void invalidSpecIsRefusedNamingTheField(
            String name, UnaryOperator<DeviceSpec.Builder> change, String field, String reason) {
        InvalidDeviceSpecException e = assertThrows(
                InvalidDeviceSpecException.class, () -> change.apply(valid()).build());
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().startsWith(field + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }

    @Test
    void defaultsAndUserCopyAlwaysRequested() {
        DeviceSpec spec = valid().build();
        assertEquals(DeviceSpec.AUTO_ID, spec.deviceId());
        assertEquals(1, spec.queues());
        assertEquals(128, spec.depth());
        assertEquals(512, spec.logicalBlockSize());
        assertEquals(512, spec.physicalBlockSize());
        assertEquals(512 * 1024, spec.maxIoBytes());
        assertEquals(EnumSet.of(UblkFeature.USER_COPY), spec.features());
        assertEquals(UblkFeature.USER_COPY.mask(), spec.featureMask());
    }

    @Test
    void validEdgeValuesAreAccepted() {
        DeviceSpec spec = valid().queues(4096)
                .depth(4096)
                .logicalBlockSize(4096)
                .physicalBlockSize(4096)
                .maxIoBytes(32L << 20)
                .deviceId((1 << 20) - 1)
                .volatileCache(true)
                .fua(true)
                .rotational(true)
                .discard(new DeviceSpec.Discard(4096, 0, 1 << 30, 1 << 20))
                .features(EnumSet.of(UblkFeature.USER_RECOVERY, UblkFeature.USER_RECOVERY_REISSUE))
                .build();
        assertEquals(4096, spec.queues());
        assertTrue(spec.features()
                .containsAll(EnumSet.of(
                        UblkFeature.USER_COPY, UblkFeature.USER_RECOVERY, UblkFeature.USER_RECOVERY_REISSUE)));
        assertEquals(spec.toString(), spec.toBuilder().build().toString());
    }
}

package dev.reactorubd.ctrl;

import dev.reactorubd.sys.UblkParams;
import java.lang.foreign.MemorySegment;

/**
 * The parameters of a device ({@code struct ublk_params}), as SET_PARAMS takes them from a {@link DeviceSpec} and
 * GET_PARAMS returns them.
 *
 * @param types                bits of the parts present ({@code UblkParams.TYPE_*})
 * @param attrs                {@code UblkParams.ATTR_*} bits
 * @param logicalBlockSize     bytes
 * @param physicalBlockSize    bytes
 * @param capacityBytes        bytes
 * @param maxIoBytes           largest request, bytes
 * @param discard              discard limits, or {@code null}
 * @param charDevice           major:minor of {@code /dev/ublkcN} ("" until known)
 * @param diskDevice           major:minor of {@code /dev/ublkbN} ("" until the device is started)
 */
public record DeviceParams(
        int types,
        int attrs,
        int logicalBlockSize,
        int physicalBlockSize,
        long capacityBytes,
        long maxIoBytes,
        DeviceSpec.Discard discard,
        String charDevice,
        String diskDevice) {

    /**
     * The parameters a spec asks for.
     *
     * @param spec the spec
     * @return the parameters a spec asks for
     */
    public static DeviceParams of(DeviceSpec spec) {
        int attrs = (spec.readOnly() ? UblkParams.ATTR_READ_ONLY : 0)
                | (spec.rotational() ? UblkParams.ATTR_ROTATIONAL : 0)
                | (spec.volatileCache() ? UblkParams.ATTR_VOLATILE_CACHE : 0)
                | (spec.fua() ? UblkParams.ATTR_FUA : 0);
        int types = UblkParams.TYPE_BASIC | (spec.discard() != null ? UblkParams.TYPE_DISCARD : 0);
        return new DeviceParams(
                types,
                attrs,
                spec.logicalBlockSize(),
                spec.physicalBlockSize(),
                spec.capacityBytes(),
                spec.maxIoBytes(),
                spec.discard(),
                "",
                "");
    }

    /**
     * Whether the device is read-only ({@code UBLK_ATTR_READ_ONLY}).
     *
     * @return whether the device is read-only
     */
    public boolean readOnly() {
        return (attrs & UblkParams.ATTR_READ_ONLY) != 0;
    }

    /**
     * Whether the device has a volatile cache, so that the kernel sends FLUSH ({@code UBLK_ATTR_VOLATILE_CACHE}).
     *
     * @return whether the device has a volatile cache
     */
    public boolean volatileCache() {
        return (attrs & UblkParams.ATTR_VOLATILE_CACHE) != 0;
    }

    /**
     * Whether WRITEs may carry FUA ({@code UBLK_ATTR_FUA}).
     *
     * @return whether FUA is allowed
     */
    public boolean fua() {
        return (attrs & UblkParams.ATTR_FUA) != 0;
    }

    /**
     * Whether the device says it is rotational ({@code UBLK_ATTR_ROTATIONAL}).
     *
     * @return whether the device is rotational
     */
    public boolean rotational() {
        return (attrs & UblkParams.ATTR_ROTATIONAL) != 0;
    }

    /**
     * Writes these parameters into a zeroed {@code ublk_params} buffer of {@link UblkParams#SIZE} bytes.
     *
     * @param s the struct's memory
     */
    public void write(MemorySegment s) {
        UblkParams.len(s, (int) UblkParams.SIZE);
        UblkParams.types(s, types & (UblkParams.TYPE_BASIC | UblkParams.TYPE_DISCARD));
        UblkParams.attrs(s, attrs);
        UblkParams.logicalBsShift(s, Integer.numberOfTrailingZeros(logicalBlockSize));
        UblkParams.physicalBsShift(s, Integer.numberOfTrailingZeros(physicalBlockSize));
        UblkParams.ioMinShift(s, Integer.numberOfTrailingZeros(physicalBlockSize));
        UblkParams.ioOptShift(s, Integer.numberOfTrailingZeros(physicalBlockSize));
        UblkParams.maxSectors(s, maxIoBytes >> 9);
        UblkParams.devSectors(s, capacityBytes >> 9);
        if (discard != null) {
            UblkParams.discardGranularity(s, discard.granularityBytes());
            UblkParams.discardAlignment(s, discard.alignmentBytes());
            UblkParams.maxDiscardSectors(s, discard.maxDiscardBytes() >> 9);
            UblkParams.maxWriteZeroesSectors(s, discard.maxWriteZeroesBytes() >> 9);
            UblkParams.maxDiscardSegments(s, 1);
        }
    }

    /**
     * Reads what GET_PARAMS returned.
     *
     * @param s the struct's memory
     * @return the parameters
     */
    public static DeviceParams read(MemorySegment s) {
        int types = UblkParams.types(s);
        DeviceSpec.Discard discard = (types & UblkParams.TYPE_DISCARD) == 0
                ? null
                : new DeviceSpec.Discard(
                        UblkParams.discardGranularity(s),
                        UblkParams.discardAlignment(s),
                        UblkParams.maxDiscardSectors(s) << 9,
                        UblkParams.maxWriteZeroesSectors(s) << 9);
        boolean devt = (types & UblkParams.TYPE_DEVT) != 0;
        String chr = devt ? UblkParams.devtCharMajor(s) + ":" + UblkParams.devtCharMinor(s) : "";
        String disk = devt && UblkParams.devtDiskMajor(s) != 0
                ? UblkParams.devtDiskMajor(s) + ":" + UblkParams.devtDiskMinor(s)
                : "";
        return new DeviceParams(
                types,
                UblkParams.attrs(s),
                1 << UblkParams.logicalBsShift(s),
                1 << UblkParams.physicalBsShift(s),
                UblkParams.devSectors(s) << 9,
                UblkParams.maxSectors(s) << 9,
                discard,
                chr,
                disk);
    }
}

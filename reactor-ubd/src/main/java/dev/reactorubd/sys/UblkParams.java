package dev.reactorubd.sys;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;

/**
 * {@code struct ublk_params} and its parts, as SET_PARAMS and GET_PARAMS exchange them.
 *
 * <p>The layout is the newest header's (152 bytes). Linux 6.12 knows the first 112 bytes (up to {@code zoned})
 * and clamps {@code len} to that, so sending the whole struct is safe on every kernel; only set the
 * {@code types} bits the running kernel knows.
 */
public final class UblkParams {
    // ---- types ----
    /** {@code UBLK_PARAM_TYPE_BASIC}: a bit of {@code ublk_params.types}, saying that part is present. */
    public static final int TYPE_BASIC = 1 << 0;
    /** {@code UBLK_PARAM_TYPE_DISCARD}: a bit of {@code ublk_params.types}, saying that part is present. */
    public static final int TYPE_DISCARD = 1 << 1;
    /** Read-only: filled by the kernel after START_DEV. */
    public static final int TYPE_DEVT = 1 << 2;
    /** {@code UBLK_PARAM_TYPE_ZONED}: a bit of {@code ublk_params.types}, saying that part is present. */
    public static final int TYPE_ZONED = 1 << 3;
    /** Linux 6.14. */
    public static final int TYPE_DMA_ALIGN = 1 << 4;
    /** Linux 6.15. */
    public static final int TYPE_SEGMENT = 1 << 5;
    /** Linux 7.0; needs {@code UBLK_F_INTEGRITY}. */
    public static final int TYPE_INTEGRITY = 1 << 6;

    // ---- basic.attrs ----
    /** {@code UBLK_ATTR_READ_ONLY}: a bit of {@code ublk_param_basic.attrs}. */
    public static final int ATTR_READ_ONLY = 1 << 0;
    /** {@code UBLK_ATTR_ROTATIONAL}: a bit of {@code ublk_param_basic.attrs}. */
    public static final int ATTR_ROTATIONAL = 1 << 1;
    /** {@code UBLK_ATTR_VOLATILE_CACHE}: a bit of {@code ublk_param_basic.attrs}. */
    public static final int ATTR_VOLATILE_CACHE = 1 << 2;
    /** {@code UBLK_ATTR_FUA}: a bit of {@code ublk_param_basic.attrs}. */
    public static final int ATTR_FUA = 1 << 3;

    /** {@code struct ublk_param_basic} (32 bytes). */
    public static final StructLayout BASIC = MemoryLayout.structLayout(
                    JAVA_INT.withName("attrs"),
                    JAVA_BYTE.withName("logical_bs_shift"),
                    JAVA_BYTE.withName("physical_bs_shift"),
                    JAVA_BYTE.withName("io_opt_shift"),
                    JAVA_BYTE.withName("io_min_shift"),
                    JAVA_INT.withName("max_sectors"),
                    JAVA_INT.withName("chunk_sectors"),
                    JAVA_LONG.withName("dev_sectors"),
                    JAVA_LONG.withName("virt_boundary_mask"))
            .withName("ublk_param_basic");

    /** {@code struct ublk_param_discard} (20 bytes). */
    public static final StructLayout DISCARD = MemoryLayout.structLayout(
                    JAVA_INT.withName("discard_alignment"),
                    JAVA_INT.withName("discard_granularity"),
                    JAVA_INT.withName("max_discard_sectors"),
                    JAVA_INT.withName("max_write_zeroes_sectors"),
                    JAVA_SHORT.withName("max_discard_segments"),
                    JAVA_SHORT.withName("reserved0"))
            .withName("ublk_param_discard");

    /** {@code struct ublk_param_devt} (16 bytes). */
    public static final StructLayout DEVT = MemoryLayout.structLayout(
                    JAVA_INT.withName("char_major"),
                    JAVA_INT.withName("char_minor"),
                    JAVA_INT.withName("disk_major"),
                    JAVA_INT.withName("disk_minor"))
            .withName("ublk_param_devt");

    /** {@code struct ublk_param_zoned} (32 bytes). */
    public static final StructLayout ZONED = MemoryLayout.structLayout(
                    JAVA_INT.withName("max_open_zones"),
                    JAVA_INT.withName("max_active_zones"),
                    JAVA_INT.withName("max_zone_append_sectors"),
                    MemoryLayout.sequenceLayout(20, JAVA_BYTE).withName("reserved"))
            .withName("ublk_param_zoned");

    /** {@code struct ublk_param_dma_align} (8 bytes, Linux 6.14). */
    public static final StructLayout DMA_ALIGN = MemoryLayout.structLayout(
                    JAVA_INT.withName("alignment"),
                    MemoryLayout.sequenceLayout(4, JAVA_BYTE).withName("pad"))
            .withName("ublk_param_dma_align");

    /** {@code struct ublk_param_segment} (16 bytes, Linux 6.15). */
    public static final StructLayout SEGMENT = MemoryLayout.structLayout(
                    JAVA_LONG.withName("seg_boundary_mask"),
                    JAVA_INT.withName("max_segment_size"),
                    JAVA_SHORT.withName("max_segments"),
                    MemoryLayout.sequenceLayout(2, JAVA_BYTE).withName("pad"))
            .withName("ublk_param_segment");

    /** {@code struct ublk_param_integrity} (16 bytes, Linux 7.0). */
    public static final StructLayout INTEGRITY = MemoryLayout.structLayout(
                    JAVA_INT.withName("flags"),
                    JAVA_SHORT.withName("max_integrity_segments"),
                    JAVA_BYTE.withName("interval_exp"),
                    JAVA_BYTE.withName("metadata_size"),
                    JAVA_BYTE.withName("pi_offset"),
                    JAVA_BYTE.withName("csum_type"),
                    JAVA_BYTE.withName("tag_size"),
                    MemoryLayout.sequenceLayout(5, JAVA_BYTE).withName("pad"))
            .withName("ublk_param_integrity");

    /** {@code struct ublk_params}. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                    JAVA_INT.withName("len"),
                    JAVA_INT.withName("types"),
                    BASIC.withName("basic"),
                    DISCARD.withName("discard"),
                    DEVT.withName("devt"),
                    ZONED.withName("zoned"),
                    DMA_ALIGN.withName("dma"),
                    MemoryLayout.paddingLayout(4),
                    SEGMENT.withName("seg"),
                    INTEGRITY.withName("integrity"))
            .withName("ublk_params");

    /** The size in bytes of {@code struct ublk_params}. */
    public static final long SIZE = LAYOUT.byteSize();
    /** What Linux 6.12 knows of the struct: up to and including {@code zoned}, rounded to 8. */
    public static final long SIZE_6_12 = 112;

    private static final VarHandle LEN = LAYOUT.varHandle(groupElement("len"));
    private static final VarHandle TYPES = LAYOUT.varHandle(groupElement("types"));
    private static final VarHandle ATTRS = basic("attrs");
    private static final VarHandle LOGICAL_BS_SHIFT = basic("logical_bs_shift");
    private static final VarHandle PHYSICAL_BS_SHIFT = basic("physical_bs_shift");
    private static final VarHandle IO_OPT_SHIFT = basic("io_opt_shift");
    private static final VarHandle IO_MIN_SHIFT = basic("io_min_shift");
    private static final VarHandle MAX_SECTORS = basic("max_sectors");
    private static final VarHandle CHUNK_SECTORS = basic("chunk_sectors");
    private static final VarHandle DEV_SECTORS = basic("dev_sectors");
    private static final VarHandle VIRT_BOUNDARY_MASK = basic("virt_boundary_mask");
    private static final VarHandle DISCARD_ALIGNMENT = discard("discard_alignment");
    private static final VarHandle DISCARD_GRANULARITY = discard("discard_granularity");
    private static final VarHandle MAX_DISCARD_SECTORS = discard("max_discard_sectors");
    private static final VarHandle MAX_WRITE_ZEROES_SECTORS = discard("max_write_zeroes_sectors");
    private static final VarHandle MAX_DISCARD_SEGMENTS = discard("max_discard_segments");
    private static final VarHandle DEVT_CHAR_MAJOR = devt("char_major");
    private static final VarHandle DEVT_CHAR_MINOR = devt("char_minor");
    private static final VarHandle DEVT_DISK_MAJOR = devt("disk_major");
    private static final VarHandle DEVT_DISK_MINOR = devt("disk_minor");

    private UblkParams() {}

    private static VarHandle basic(String f) {
        return LAYOUT.varHandle(groupElement("basic"), groupElement(f));
    }

    private static VarHandle discard(String f) {
        return LAYOUT.varHandle(groupElement("discard"), groupElement(f));
    }

    private static VarHandle devt(String f) {
        return LAYOUT.varHandle(groupElement("devt"), groupElement(f));
    }

    /**
     * Byte offset of a top-level member ({@code "basic"}) or a member of one ({@code "basic", "dev_sectors"}).
     *
     * @param path the path of the field, as in the kernel header
     * @return byte offset of a top-level member ({@code "basic"}) or a member of one ({@code "basic", "dev_sectors"})
     */
    public static long offsetOf(String... path) {
        MemoryLayout.PathElement[] elements = new MemoryLayout.PathElement[path.length];
        for (int i = 0; i < path.length; i++) {
            elements[i] = groupElement(path[i]);
        }
        return LAYOUT.byteOffset(elements);
    }

    /**
     * Reads {@code len} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int len(MemorySegment s) {
        return (int) LEN.get(s, 0L);
    }
    /**
     * Writes {@code len} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void len(MemorySegment s, int v) {
        LEN.set(s, 0L, v);
    }
    /**
     * Reads {@code types} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int types(MemorySegment s) {
        return (int) TYPES.get(s, 0L);
    }
    /**
     * Writes {@code types} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void types(MemorySegment s, int v) {
        TYPES.set(s, 0L, v);
    }

    /**
     * Reads {@code attrs} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int attrs(MemorySegment s) {
        return (int) ATTRS.get(s, 0L);
    }
    /**
     * Writes {@code attrs} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void attrs(MemorySegment s, int v) {
        ATTRS.set(s, 0L, v);
    }
    /**
     * Reads {@code logical_bs_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int logicalBsShift(MemorySegment s) {
        return Byte.toUnsignedInt((byte) LOGICAL_BS_SHIFT.get(s, 0L));
    }
    /**
     * Writes {@code logical_bs_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void logicalBsShift(MemorySegment s, int v) {
        LOGICAL_BS_SHIFT.set(s, 0L, (byte) v);
    }
    /**
     * Reads {@code physical_bs_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int physicalBsShift(MemorySegment s) {
        return Byte.toUnsignedInt((byte) PHYSICAL_BS_SHIFT.get(s, 0L));
    }
    /**
     * Writes {@code physical_bs_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void physicalBsShift(MemorySegment s, int v) {
        PHYSICAL_BS_SHIFT.set(s, 0L, (byte) v);
    }
    /**
     * Reads {@code io_opt_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int ioOptShift(MemorySegment s) {
        return Byte.toUnsignedInt((byte) IO_OPT_SHIFT.get(s, 0L));
    }
    /**
     * Writes {@code io_opt_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void ioOptShift(MemorySegment s, int v) {
        IO_OPT_SHIFT.set(s, 0L, (byte) v);
    }
    /**
     * Reads {@code io_min_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int ioMinShift(MemorySegment s) {
        return Byte.toUnsignedInt((byte) IO_MIN_SHIFT.get(s, 0L));
    }
    /**
     * Writes {@code io_min_shift} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void ioMinShift(MemorySegment s, int v) {
        IO_MIN_SHIFT.set(s, 0L, (byte) v);
    }
    /**
     * Reads {@code max_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long maxSectors(MemorySegment s) {
        return Integer.toUnsignedLong((int) MAX_SECTORS.get(s, 0L));
    }
    /**
     * Writes {@code max_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void maxSectors(MemorySegment s, long v) {
        MAX_SECTORS.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code chunk_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long chunkSectors(MemorySegment s) {
        return Integer.toUnsignedLong((int) CHUNK_SECTORS.get(s, 0L));
    }
    /**
     * Writes {@code chunk_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void chunkSectors(MemorySegment s, long v) {
        CHUNK_SECTORS.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code dev_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long devSectors(MemorySegment s) {
        return (long) DEV_SECTORS.get(s, 0L);
    }
    /**
     * Writes {@code dev_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void devSectors(MemorySegment s, long v) {
        DEV_SECTORS.set(s, 0L, v);
    }
    /**
     * Reads {@code virt_boundary_mask} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long virtBoundaryMask(MemorySegment s) {
        return (long) VIRT_BOUNDARY_MASK.get(s, 0L);
    }
    /**
     * Writes {@code virt_boundary_mask} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void virtBoundaryMask(MemorySegment s, long v) {
        VIRT_BOUNDARY_MASK.set(s, 0L, v);
    }

    /**
     * Reads {@code discard_alignment} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long discardAlignment(MemorySegment s) {
        return Integer.toUnsignedLong((int) DISCARD_ALIGNMENT.get(s, 0L));
    }
    /**
     * Writes {@code discard_alignment} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void discardAlignment(MemorySegment s, long v) {
        DISCARD_ALIGNMENT.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code discard_granularity} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long discardGranularity(MemorySegment s) {
        return Integer.toUnsignedLong((int) DISCARD_GRANULARITY.get(s, 0L));
    }
    /**
     * Writes {@code discard_granularity} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void discardGranularity(MemorySegment s, long v) {
        DISCARD_GRANULARITY.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code max_discard_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long maxDiscardSectors(MemorySegment s) {
        return Integer.toUnsignedLong((int) MAX_DISCARD_SECTORS.get(s, 0L));
    }
    /**
     * Writes {@code max_discard_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void maxDiscardSectors(MemorySegment s, long v) {
        MAX_DISCARD_SECTORS.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code max_write_zeroes_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long maxWriteZeroesSectors(MemorySegment s) {
        return Integer.toUnsignedLong((int) MAX_WRITE_ZEROES_SECTORS.get(s, 0L));
    }
    /**
     * Writes {@code max_write_zeroes_sectors} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void maxWriteZeroesSectors(MemorySegment s, long v) {
        MAX_WRITE_ZEROES_SECTORS.set(s, 0L, (int) v);
    }
    /**
     * Reads {@code max_discard_segments} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int maxDiscardSegments(MemorySegment s) {
        return Short.toUnsignedInt((short) MAX_DISCARD_SEGMENTS.get(s, 0L));
    }
    /**
     * Writes {@code max_discard_segments} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void maxDiscardSegments(MemorySegment s, int v) {
        MAX_DISCARD_SEGMENTS.set(s, 0L, (short) v);
    }

    /**
     * Reads {@code devt_char_major} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int devtCharMajor(MemorySegment s) {
        return (int) DEVT_CHAR_MAJOR.get(s, 0L);
    }
    /**
     * Reads {@code devt_char_minor} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int devtCharMinor(MemorySegment s) {
        return (int) DEVT_CHAR_MINOR.get(s, 0L);
    }
    /**
     * Reads {@code devt_disk_major} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int devtDiskMajor(MemorySegment s) {
        return (int) DEVT_DISK_MAJOR.get(s, 0L);
    }
    /**
     * Reads {@code devt_disk_minor} of a {@code ublk_params}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int devtDiskMinor(MemorySegment s) {
        return (int) DEVT_DISK_MINOR.get(s, 0L);
    }
}

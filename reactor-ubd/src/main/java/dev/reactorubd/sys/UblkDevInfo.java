package dev.reactorubd.sys;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;

/**
 * {@code struct ublksrv_ctrl_dev_info} (64 bytes): what ADD_DEV sends and writes back, and what GET_DEV_INFO
 * returns.
 */
public final class UblkDevInfo {
    /** The layout of {@code struct ublksrv_ctrl_dev_info} (64 bytes). */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                    JAVA_SHORT.withName("nr_hw_queues"),
                    JAVA_SHORT.withName("queue_depth"),
                    JAVA_SHORT.withName("state"),
                    JAVA_SHORT.withName("pad0"),
                    JAVA_INT.withName("max_io_buf_bytes"),
                    JAVA_INT.withName("dev_id"),
                    JAVA_INT.withName("ublksrv_pid"),
                    JAVA_INT.withName("pad1"),
                    JAVA_LONG.withName("flags"),
                    JAVA_LONG.withName("ublksrv_flags"),
                    JAVA_INT.withName("owner_uid"),
                    JAVA_INT.withName("owner_gid"),
                    JAVA_LONG.withName("reserved1"),
                    JAVA_LONG.withName("reserved2"))
            .withName("ublksrv_ctrl_dev_info");

    /** The size in bytes of {@code struct ublksrv_ctrl_dev_info}. */
    public static final long SIZE = LAYOUT.byteSize();

    private static final VarHandle NR_HW_QUEUES = handle("nr_hw_queues");
    private static final VarHandle QUEUE_DEPTH = handle("queue_depth");
    private static final VarHandle STATE = handle("state");
    private static final VarHandle MAX_IO_BUF_BYTES = handle("max_io_buf_bytes");
    private static final VarHandle DEV_ID = handle("dev_id");
    private static final VarHandle UBLKSRV_PID = handle("ublksrv_pid");
    private static final VarHandle FLAGS = handle("flags");
    private static final VarHandle UBLKSRV_FLAGS = handle("ublksrv_flags");
    private static final VarHandle OWNER_UID = handle("owner_uid");
    private static final VarHandle OWNER_GID = handle("owner_gid");

    private UblkDevInfo() {}

    private static VarHandle handle(String name) {
        return LAYOUT.varHandle(groupElement(name));
    }

    /**
     * The byte offset of a field of {@code struct ublksrv_ctrl_dev_info}, by its kernel name.
     *
     * @param field the field name, as in the kernel header
     * @return the byte offset
     */
    public static long offsetOf(String field) {
        return LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * Reads {@code nr_hw_queues} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int nrHwQueues(MemorySegment s) {
        return Short.toUnsignedInt((short) NR_HW_QUEUES.get(s, 0L));
    }

    /**
     * Writes {@code nr_hw_queues} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void nrHwQueues(MemorySegment s, int v) {
        NR_HW_QUEUES.set(s, 0L, (short) v);
    }

    /**
     * Reads {@code queue_depth} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int queueDepth(MemorySegment s) {
        return Short.toUnsignedInt((short) QUEUE_DEPTH.get(s, 0L));
    }

    /**
     * Writes {@code queue_depth} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void queueDepth(MemorySegment s, int v) {
        QUEUE_DEPTH.set(s, 0L, (short) v);
    }

    /**
     * Reads {@code state} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int state(MemorySegment s) {
        return Short.toUnsignedInt((short) STATE.get(s, 0L));
    }

    /**
     * Reads {@code max_io_buf_bytes} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long maxIoBufBytes(MemorySegment s) {
        return Integer.toUnsignedLong((int) MAX_IO_BUF_BYTES.get(s, 0L));
    }

    /**
     * Writes {@code max_io_buf_bytes} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void maxIoBufBytes(MemorySegment s, long v) {
        MAX_IO_BUF_BYTES.set(s, 0L, (int) v);
    }

    /**
     * Reads {@code dev_id} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int devId(MemorySegment s) {
        return (int) DEV_ID.get(s, 0L);
    }

    /**
     * Writes {@code dev_id} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void devId(MemorySegment s, int v) {
        DEV_ID.set(s, 0L, v);
    }

    /**
     * Reads {@code ublksrv_pid} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int ublksrvPid(MemorySegment s) {
        return (int) UBLKSRV_PID.get(s, 0L);
    }

    /**
     * Reads {@code flags} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long flags(MemorySegment s) {
        return (long) FLAGS.get(s, 0L);
    }

    /**
     * Writes {@code flags} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @param v the value
     */
    public static void flags(MemorySegment s, long v) {
        FLAGS.set(s, 0L, v);
    }

    /**
     * Reads {@code ublksrv_flags} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long ublksrvFlags(MemorySegment s) {
        return (long) UBLKSRV_FLAGS.get(s, 0L);
    }

    /**
     * Reads {@code owner_uid} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int ownerUid(MemorySegment s) {
        return (int) OWNER_UID.get(s, 0L);
    }

    /**
     * Reads {@code owner_gid} of a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int ownerGid(MemorySegment s) {
        return (int) OWNER_GID.get(s, 0L);
    }
}

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
 * Control commands sent on {@code /dev/ublk-control}, and {@code struct ublksrv_ctrl_cmd}, the 32-byte payload
 * that travels inside a 128-byte SQE at byte 48.
 *
 * <p>Opcodes are ioctl-encoded ({@code UBLK_U_CMD_*}); the kernel answers the legacy numbers with
 * {@code -EOPNOTSUPP} unless it was built with legacy support, so this library only sends encoded ones.
 */
public final class UblkCtrlCmd {
    /** {@code struct ublksrv_ctrl_cmd}. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                    JAVA_INT.withName("dev_id"),
                    JAVA_SHORT.withName("queue_id"),
                    JAVA_SHORT.withName("len"),
                    JAVA_LONG.withName("addr"),
                    JAVA_LONG.withName("data"),
                    JAVA_SHORT.withName("dev_path_len"),
                    JAVA_SHORT.withName("pad"),
                    JAVA_INT.withName("reserved"))
            .withName("ublksrv_ctrl_cmd");

    /** Size of the struct in bytes (32). */
    public static final long SIZE = LAYOUT.byteSize();

    /** {@code queue_id} for commands that do not address a queue. */
    public static final short NO_QUEUE = (short) 0xFFFF;
    /** {@code dev_id} asking ADD_DEV to pick a free id. */
    public static final int AUTO_DEV_ID = -1;

    // Legacy command numbers (the low byte of the encoded opcodes).
    /** The command number of {@code UBLK_CMD_GET_QUEUE_AFFINITY} (the legacy opcode). */
    public static final int NR_GET_QUEUE_AFFINITY = 0x01;
    /** The command number of {@code UBLK_CMD_GET_DEV_INFO} (the legacy opcode). */
    public static final int NR_GET_DEV_INFO = 0x02;
    /** The command number of {@code UBLK_CMD_ADD_DEV} (the legacy opcode). */
    public static final int NR_ADD_DEV = 0x04;
    /** The command number of {@code UBLK_CMD_DEL_DEV} (the legacy opcode). */
    public static final int NR_DEL_DEV = 0x05;
    /** The command number of {@code UBLK_CMD_START_DEV} (the legacy opcode). */
    public static final int NR_START_DEV = 0x06;
    /** The command number of {@code UBLK_CMD_STOP_DEV} (the legacy opcode). */
    public static final int NR_STOP_DEV = 0x07;
    /** The command number of {@code UBLK_CMD_SET_PARAMS} (the legacy opcode). */
    public static final int NR_SET_PARAMS = 0x08;
    /** The command number of {@code UBLK_CMD_GET_PARAMS} (the legacy opcode). */
    public static final int NR_GET_PARAMS = 0x09;
    /** The command number of {@code UBLK_CMD_START_USER_RECOVERY} (the legacy opcode). */
    public static final int NR_START_USER_RECOVERY = 0x10;
    /** The command number of {@code UBLK_CMD_END_USER_RECOVERY} (the legacy opcode). */
    public static final int NR_END_USER_RECOVERY = 0x11;
    /** The command number of {@code UBLK_CMD_GET_DEV_INFO2} (the legacy opcode). */
    public static final int NR_GET_DEV_INFO2 = 0x12;
    /** Linux 6.5. */
    public static final int NR_GET_FEATURES = 0x13;
    /** Linux 6.9. */
    public static final int NR_DEL_DEV_ASYNC = 0x14;
    /** Linux 6.16. */
    public static final int NR_UPDATE_SIZE = 0x15;
    /** Linux 6.16. */
    public static final int NR_QUIESCE_DEV = 0x16;
    /** Linux 6.19. */
    public static final int NR_TRY_STOP_DEV = 0x17;

    /** {@code UBLK_U_CMD_GET_QUEUE_AFFINITY}: the ioctl-encoded opcode of the control command. */
    public static final int GET_QUEUE_AFFINITY = Ioctl.ior('u', NR_GET_QUEUE_AFFINITY, SIZE);
    /** {@code UBLK_U_CMD_GET_DEV_INFO}: the ioctl-encoded opcode of the control command. */
    public static final int GET_DEV_INFO = Ioctl.ior('u', NR_GET_DEV_INFO, SIZE);
    /** {@code UBLK_U_CMD_ADD_DEV}: the ioctl-encoded opcode of the control command. */
    public static final int ADD_DEV = Ioctl.iowr('u', NR_ADD_DEV, SIZE);
    /** {@code UBLK_U_CMD_DEL_DEV}: the ioctl-encoded opcode of the control command. */
    public static final int DEL_DEV = Ioctl.iowr('u', NR_DEL_DEV, SIZE);
    /** {@code UBLK_U_CMD_START_DEV}: the ioctl-encoded opcode of the control command. */
    public static final int START_DEV = Ioctl.iowr('u', NR_START_DEV, SIZE);
    /** {@code UBLK_U_CMD_STOP_DEV}: the ioctl-encoded opcode of the control command. */
    public static final int STOP_DEV = Ioctl.iowr('u', NR_STOP_DEV, SIZE);
    /** {@code UBLK_U_CMD_SET_PARAMS}: the ioctl-encoded opcode of the control command. */
    public static final int SET_PARAMS = Ioctl.iowr('u', NR_SET_PARAMS, SIZE);
    /** {@code UBLK_U_CMD_GET_PARAMS}: the ioctl-encoded opcode of the control command. */
    public static final int GET_PARAMS = Ioctl.ior('u', NR_GET_PARAMS, SIZE);
    /** {@code UBLK_U_CMD_START_USER_RECOVERY}: the ioctl-encoded opcode of the control command. */
    public static final int START_USER_RECOVERY = Ioctl.iowr('u', NR_START_USER_RECOVERY, SIZE);
    /** {@code UBLK_U_CMD_END_USER_RECOVERY}: the ioctl-encoded opcode of the control command. */
    public static final int END_USER_RECOVERY = Ioctl.iowr('u', NR_END_USER_RECOVERY, SIZE);
    /** {@code UBLK_U_CMD_GET_DEV_INFO2}: the ioctl-encoded opcode of the control command. */
    public static final int GET_DEV_INFO2 = Ioctl.ior('u', NR_GET_DEV_INFO2, SIZE);
    /** Linux 6.5. */
    public static final int GET_FEATURES = Ioctl.ior('u', NR_GET_FEATURES, SIZE);
    /** Linux 6.9. */
    public static final int DEL_DEV_ASYNC = Ioctl.ior('u', NR_DEL_DEV_ASYNC, SIZE);
    /** Linux 6.16. */
    public static final int UPDATE_SIZE = Ioctl.iowr('u', NR_UPDATE_SIZE, SIZE);
    /** Linux 6.16. */
    public static final int QUIESCE_DEV = Ioctl.iowr('u', NR_QUIESCE_DEV, SIZE);
    /** Linux 6.19. */
    public static final int TRY_STOP_DEV = Ioctl.iowr('u', NR_TRY_STOP_DEV, SIZE);

    private static final VarHandle DEV_ID = handle("dev_id");
    private static final VarHandle QUEUE_ID = handle("queue_id");
    private static final VarHandle LEN = handle("len");
    private static final VarHandle ADDR = handle("addr");
    private static final VarHandle DATA = handle("data");
    private static final VarHandle DEV_PATH_LEN = handle("dev_path_len");

    private UblkCtrlCmd() {}

    private static VarHandle handle(String name) {
        return LAYOUT.varHandle(groupElement(name));
    }

    /**
     * Byte offset of a field, for tests and for SQE writers.
     *
     * @param field the field name, as in the kernel header
     * @return byte offset of a field, for tests and for SQE writers
     */
    public static long offsetOf(String field) {
        return LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * Writes a whole command into {@code cmd} (at least {@link #SIZE} bytes); fields not named are zeroed.
     *
     * @param cmd the command's memory
     * @param devId the device id
     * @param queueId the queue id, or -1 when the command is not about a queue
     * @param len the length of the buffer at {@code addr}
     * @param addr native address of the command's buffer, or 0
     * @param data the command's inline argument ({@code data[0]})
     */
    public static void write(MemorySegment cmd, int devId, short queueId, int len, long addr, long data) {
        cmd.asSlice(0, SIZE).fill((byte) 0);
        DEV_ID.set(cmd, 0L, devId);
        QUEUE_ID.set(cmd, 0L, queueId);
        LEN.set(cmd, 0L, (short) len);
        ADDR.set(cmd, 0L, addr);
        DATA.set(cmd, 0L, data);
    }

    /**
     * Reads {@code dev_id} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static int devId(MemorySegment cmd) {
        return (int) DEV_ID.get(cmd, 0L);
    }

    /**
     * Reads {@code queue_id} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static int queueId(MemorySegment cmd) {
        return Short.toUnsignedInt((short) QUEUE_ID.get(cmd, 0L));
    }

    /**
     * Reads {@code len} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static int len(MemorySegment cmd) {
        return Short.toUnsignedInt((short) LEN.get(cmd, 0L));
    }

    /**
     * Reads {@code addr} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static long addr(MemorySegment cmd) {
        return (long) ADDR.get(cmd, 0L);
    }

    /**
     * Reads {@code data} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static long data(MemorySegment cmd) {
        return (long) DATA.get(cmd, 0L);
    }

    /**
     * Reads {@code dev_path_len} of a {@code ublksrv_ctrl_cmd}.
     *
     * @param cmd the command's memory
     * @return the value
     */
    public static int devPathLen(MemorySegment cmd) {
        return Short.toUnsignedInt((short) DEV_PATH_LEN.get(cmd, 0L));
    }

    /**
     * A readable name for an encoded control opcode, for error messages.
     *
     * @param opcode the ioctl-encoded opcode
     * @return a readable name for an encoded control opcode, for error messages
     */
    public static String name(int opcode) {
        return switch (Ioctl.nr(opcode)) {
            case NR_GET_QUEUE_AFFINITY -> "GET_QUEUE_AFFINITY";
            case NR_GET_DEV_INFO -> "GET_DEV_INFO";
            case NR_ADD_DEV -> "ADD_DEV";
            case NR_DEL_DEV -> "DEL_DEV";
            case NR_START_DEV -> "START_DEV";
            case NR_STOP_DEV -> "STOP_DEV";
            case NR_SET_PARAMS -> "SET_PARAMS";
            case NR_GET_PARAMS -> "GET_PARAMS";
            case NR_START_USER_RECOVERY -> "START_USER_RECOVERY";
            case NR_END_USER_RECOVERY -> "END_USER_RECOVERY";
            case NR_GET_DEV_INFO2 -> "GET_DEV_INFO2";
            case NR_GET_FEATURES -> "GET_FEATURES";
            case NR_DEL_DEV_ASYNC -> "DEL_DEV_ASYNC";
            case NR_UPDATE_SIZE -> "UPDATE_SIZE";
            case NR_QUIESCE_DEV -> "QUIESCE_DEV";
            case NR_TRY_STOP_DEV -> "TRY_STOP_DEV";
            default -> String.format("0x%08x", opcode);
        };
    }
}

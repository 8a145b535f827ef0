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
 * The IO side of the ABI, used on {@code /dev/ublkcN}: IO commands and {@code struct ublksrv_io_cmd},
 * the per-tag descriptor {@code struct ublksrv_io_desc} in the read-only shared area, IO operations and flags,
 * and the USER_COPY offsets.
 */
public final class UblkIo {
    // ---- commands (legacy numbers and ioctl-encoded opcodes) ----
    /** The command number of {@code UBLK_U_IO_FETCH_REQ} ({@code UBLK_IO_FETCH_REQ}, the legacy opcode). */
    public static final int NR_FETCH_REQ = 0x20;
    /**
     * The command number of {@code UBLK_U_IO_COMMIT_AND_FETCH_REQ} ({@code UBLK_IO_COMMIT_AND_FETCH_REQ}, the legacy
     * opcode).
     */
    public static final int NR_COMMIT_AND_FETCH_REQ = 0x21;
    /** The command number of {@code UBLK_U_IO_NEED_GET_DATA} ({@code UBLK_IO_NEED_GET_DATA}, the legacy opcode). */
    public static final int NR_NEED_GET_DATA = 0x22;
    /** Linux 6.15. */
    public static final int NR_REGISTER_IO_BUF = 0x23;
    /** Linux 6.15. */
    public static final int NR_UNREGISTER_IO_BUF = 0x24;
    /** Linux 7.0 (batch IO). */
    public static final int NR_PREP_IO_CMDS = 0x25;
    /** Linux 7.0 (batch IO). */
    public static final int NR_COMMIT_IO_CMDS = 0x26;
    /** Linux 7.0 (batch IO). */
    public static final int NR_FETCH_IO_CMDS = 0x27;

    /** {@code struct ublksrv_io_cmd} (16 bytes), at SQE byte 48. */
    public static final StructLayout CMD_LAYOUT = MemoryLayout.structLayout(
                    JAVA_SHORT.withName("q_id"),
                    JAVA_SHORT.withName("tag"),
                    JAVA_INT.withName("result"),
                    JAVA_LONG.withName("addr"))
            .withName("ublksrv_io_cmd");

    /** The size in bytes of {@code struct ublksrv_io_cmd} (16). */
    public static final long CMD_SIZE = CMD_LAYOUT.byteSize();

    /** {@code UBLK_U_IO_FETCH_REQ}: the ioctl-encoded opcode of the IO command. */
    public static final int FETCH_REQ = Ioctl.iowr('u', NR_FETCH_REQ, CMD_SIZE);
    /** {@code UBLK_U_IO_COMMIT_AND_FETCH_REQ}: the ioctl-encoded opcode of the IO command. */
    public static final int COMMIT_AND_FETCH_REQ = Ioctl.iowr('u', NR_COMMIT_AND_FETCH_REQ, CMD_SIZE);
    /** {@code UBLK_U_IO_NEED_GET_DATA}: the ioctl-encoded opcode of the IO command. */
    public static final int NEED_GET_DATA = Ioctl.iowr('u', NR_NEED_GET_DATA, CMD_SIZE);
    /** {@code UBLK_U_IO_REGISTER_IO_BUF}: the ioctl-encoded opcode of the IO command. */
    public static final int REGISTER_IO_BUF = Ioctl.iowr('u', NR_REGISTER_IO_BUF, CMD_SIZE);
    /** {@code UBLK_U_IO_UNREGISTER_IO_BUF}: the ioctl-encoded opcode of the IO command. */
    public static final int UNREGISTER_IO_BUF = Ioctl.iowr('u', NR_UNREGISTER_IO_BUF, CMD_SIZE);
    /** {@code sizeof(struct ublk_batch_io)} = 16. */
    public static final int PREP_IO_CMDS = Ioctl.iowr('u', NR_PREP_IO_CMDS, 16);
    /** {@code UBLK_U_IO_COMMIT_IO_CMDS}: the ioctl-encoded opcode of the IO command. */
    public static final int COMMIT_IO_CMDS = Ioctl.iowr('u', NR_COMMIT_IO_CMDS, 16);
    /** {@code UBLK_U_IO_FETCH_IO_CMDS}: the ioctl-encoded opcode of the IO command. */
    public static final int FETCH_IO_CMDS = Ioctl.iowr('u', NR_FETCH_IO_CMDS, 16);

    // ---- results of FETCH / COMMIT_AND_FETCH completions ----
    /** A request waits in the descriptor of the completed tag. */
    public static final int RES_OK = 0;
    /** Only with NEED_GET_DATA: send NEED_GET_DATA for the write's buffer. */
    public static final int RES_NEED_GET_DATA = 1;
    /** {@code -ENODEV}: the queue is going away; do not fetch this tag again. */
    public static final int RES_ABORT = -19;

    // ---- operations (op_flags bits 0-7) ----
    /** {@code UBLK_IO_OP_READ}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_READ = 0;
    /** {@code UBLK_IO_OP_WRITE}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_WRITE = 1;
    /** {@code UBLK_IO_OP_FLUSH}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_FLUSH = 2;
    /** {@code UBLK_IO_OP_DISCARD}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_DISCARD = 3;
    /** {@code UBLK_IO_OP_WRITE_SAME}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_WRITE_SAME = 4;
    /** {@code UBLK_IO_OP_WRITE_ZEROES}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_WRITE_ZEROES = 5;
    /** {@code UBLK_IO_OP_ZONE_OPEN}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_OPEN = 10;
    /** {@code UBLK_IO_OP_ZONE_CLOSE}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_CLOSE = 11;
    /** {@code UBLK_IO_OP_ZONE_FINISH}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_FINISH = 12;
    /** {@code UBLK_IO_OP_ZONE_APPEND}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_APPEND = 13;
    /** {@code UBLK_IO_OP_ZONE_RESET_ALL}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_RESET_ALL = 14;
    /** {@code UBLK_IO_OP_ZONE_RESET}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_ZONE_RESET = 15;
    /** {@code UBLK_IO_OP_REPORT_ZONES}: an operation in the low byte of {@code op_flags}. */
    public static final int OP_REPORT_ZONES = 18;

    // ---- flags (op_flags bits 8-31, given here as op_flags bits) ----
    /** {@code UBLK_IO_F_FAILFAST_DEV}: a request flag in {@code op_flags}. */
    public static final int F_FAILFAST_DEV = 1 << 8;
    /** {@code UBLK_IO_F_FAILFAST_TRANSPORT}: a request flag in {@code op_flags}. */
    public static final int F_FAILFAST_TRANSPORT = 1 << 9;
    /** {@code UBLK_IO_F_FAILFAST_DRIVER}: a request flag in {@code op_flags}. */
    public static final int F_FAILFAST_DRIVER = 1 << 10;
    /** {@code UBLK_IO_F_META}: a request flag in {@code op_flags}. */
    public static final int F_META = 1 << 11;
    /** {@code UBLK_IO_F_FUA}: a request flag in {@code op_flags}. */
    public static final int F_FUA = 1 << 13;
    /** {@code UBLK_IO_F_NOUNMAP}: a request flag in {@code op_flags}. */
    public static final int F_NOUNMAP = 1 << 15;
    /** {@code UBLK_IO_F_SWAP}: a request flag in {@code op_flags}. */
    public static final int F_SWAP = 1 << 16;
    /** Linux 6.16 (AUTO_BUF_REG fallback). */
    public static final int F_NEED_REG_BUF = 1 << 17;
    /** Linux 7.0. */
    public static final int F_INTEGRITY = 1 << 18;

    // ---- descriptor area ----
    /** {@code struct ublksrv_io_desc} (24 bytes), one per tag in the mmap'ed area of a queue. */
    public static final StructLayout DESC_LAYOUT = MemoryLayout.structLayout(
                    JAVA_INT.withName("op_flags"),
                    JAVA_INT.withName("nr_sectors"),
                    JAVA_LONG.withName("start_sector"),
                    JAVA_LONG.withName("addr"))
            .withName("ublksrv_io_desc");

    /** The size in bytes of {@code struct ublksrv_io_desc} (24): one per tag in the descriptor area. */
    public static final long DESC_SIZE = DESC_LAYOUT.byteSize();
    /** {@code UBLKSRV_CMD_BUF_OFFSET}: mmap offset of queue 0's descriptors. */
    public static final long CMD_BUF_OFFSET = 0;
    /** {@code UBLK_MAX_QUEUE_DEPTH}. */
    public static final int MAX_QUEUE_DEPTH = 4096;
    /** {@code UBLK_MAX_NR_QUEUES}. */
    public static final int MAX_NR_QUEUES = 4096;

    // ---- USER_COPY offsets on /dev/ublkcN ----
    /** {@code UBLKSRV_IO_BUF_OFFSET}. */
    public static final long IO_BUF_OFFSET = 0x80000000L;
    /** {@code UBLK_IO_BUF_BITS}: the layout of USER_COPY offsets (buffer offset, then tag, then queue id). */
    public static final int IO_BUF_BITS = 25;
    /** {@code UBLK_TAG_OFF}: the layout of USER_COPY offsets (buffer offset, then tag, then queue id). */
    public static final int TAG_OFF = IO_BUF_BITS;
    /** {@code UBLK_TAG_BITS}: the layout of USER_COPY offsets (buffer offset, then tag, then queue id). */
    public static final int TAG_BITS = 16;
    /** {@code UBLK_QID_OFF}: the layout of USER_COPY offsets (buffer offset, then tag, then queue id). */
    public static final int QID_OFF = TAG_OFF + TAG_BITS;
    /** {@code UBLK_QID_BITS}: the layout of USER_COPY offsets (buffer offset, then tag, then queue id). */
    public static final int QID_BITS = 12;
    /** Largest single request that USER_COPY can address (32 MiB). */
    public static final long MAX_IO_BYTES = 1L << IO_BUF_BITS;

    private static final VarHandle CMD_Q_ID = CMD_LAYOUT.varHandle(groupElement("q_id"));
    private static final VarHandle CMD_TAG = CMD_LAYOUT.varHandle(groupElement("tag"));
    private static final VarHandle CMD_RESULT = CMD_LAYOUT.varHandle(groupElement("result"));
    private static final VarHandle CMD_ADDR = CMD_LAYOUT.varHandle(groupElement("addr"));
    private static final VarHandle DESC_OP_FLAGS = DESC_LAYOUT.varHandle(groupElement("op_flags"));
    private static final VarHandle DESC_NR_SECTORS = DESC_LAYOUT.varHandle(groupElement("nr_sectors"));
    private static final VarHandle DESC_START_SECTOR = DESC_LAYOUT.varHandle(groupElement("start_sector"));
    private static final VarHandle DESC_ADDR = DESC_LAYOUT.varHandle(groupElement("addr"));

    private UblkIo() {}

    /**
     * The byte offset of a field of {@code struct ublksrv_io_cmd}, by its kernel name.
     *
     * @param field the field name, as in the kernel header ({@code "q_id"}, {@code "tag"}, {@code "result"}, {@code
     *         "addr"})
     * @return the byte offset
     */
    public static long cmdOffsetOf(String field) {
        return CMD_LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * The byte offset of a field of {@code struct ublksrv_io_desc}, by its kernel name.
     *
     * @param field the field name, as in the kernel header ({@code "op_flags"}, {@code "nr_sectors"}, {@code
     *         "start_sector"}, {@code "addr"})
     * @return the byte offset
     */
    public static long descOffsetOf(String field) {
        return DESC_LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * Writes a whole {@code ublksrv_io_cmd}.
     *
     * @param s the struct's memory
     * @param qId the queue id
     * @param tag the request tag, from 0 to depth - 1
     * @param result the result: a byte count or 0 on success, or {@code -errno}
     * @param addr the command's {@code addr}: a buffer address, 0 with USER_COPY
     */
    public static void writeCmd(MemorySegment s, int qId, int tag, int result, long addr) {
        CMD_Q_ID.set(s, 0L, (short) qId);
        CMD_TAG.set(s, 0L, (short) tag);
        CMD_RESULT.set(s, 0L, result);
        CMD_ADDR.set(s, 0L, addr);
    }

    /**
     * The first 8 bytes of {@code ublksrv_io_cmd} as one little-endian long (q_id, tag, result): what a ring that
     * can only write 8 bytes at SQE offset 48 (Netty's) must carry. {@code addr} then stays zero, as USER_COPY
     * wants.
     *
     * @param qId the queue id
     * @param tag the request tag, from 0 to depth - 1
     * @param result the result: a byte count or 0 on success, or {@code -errno}
     * @return the first 8 bytes of {@code ublksrv_io_cmd} as one little-endian long (q_id, tag, result): what a ring
     *         that can only write 8 bytes at SQE offset 48 (Netty's) must carry
     */
    public static long packCmd(int qId, int tag, int result) {
        return (qId & 0xFFFFL) | (tag & 0xFFFFL) << 16 | (result & 0xFFFF_FFFFL) << 32;
    }

    /** {@code UBLK_AUTO_BUF_REG_FALLBACK}: when the kernel cannot register a request's buffer, it hands the request
     * over anyway with {@link #F_NEED_REG_BUF} set, instead of failing it with EIO. */
    public static final int AUTO_BUF_REG_FALLBACK = 1;
    /** A buffer index no ring's table has ({@code IORING_MAX_REG_BUFFERS} is 16384): registration into it always fails,
     * so with {@link #AUTO_BUF_REG_FALLBACK} every request falls back to USER_COPY. */
    public static final int AUTO_BUF_REG_NO_INDEX = 0xFFFF;

    /**
     * Packs a {@code struct ublk_auto_buf_reg} (Linux 6.16, {@code UBLK_F_AUTO_BUF_REG}): on a FETCH or
     * COMMIT_AND_FETCH it travels in the SQE's own {@code addr} field (byte 16), not in {@code ublksrv_io_cmd}, and
     * names the slot of the issuing ring's buffer table where the kernel registers the next request's pages.
     *
     * @param index the buffer table slot, from 0 to 65535
     * @param flags {@link #AUTO_BUF_REG_FALLBACK} or 0
     * @return the value of the SQE's {@code addr}: index in bits 0-15, flags in bits 16-23, the rest 0
     */
    public static long autoBufReg(int index, int flags) {
        return (index & 0xFFFFL) | (flags & 0xFFL) << 16;
    }

    /**
     * Reads {@code q_id} of a {@code ublksrv_io_cmd}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int cmdQId(MemorySegment s) {
        return Short.toUnsignedInt((short) CMD_Q_ID.get(s, 0L));
    }
    /**
     * Reads {@code tag} of a {@code ublksrv_io_cmd}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int cmdTag(MemorySegment s) {
        return Short.toUnsignedInt((short) CMD_TAG.get(s, 0L));
    }
    /**
     * Reads {@code result} of a {@code ublksrv_io_cmd}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static int cmdResult(MemorySegment s) {
        return (int) CMD_RESULT.get(s, 0L);
    }
    /**
     * Reads {@code addr} of a {@code ublksrv_io_cmd}.
     *
     * @param s the struct's memory
     * @return the value
     */
    public static long cmdAddr(MemorySegment s) {
        return (long) CMD_ADDR.get(s, 0L);
    }

    /**
     * {@code op_flags} of the descriptor of {@code tag} in a queue's descriptor area.
     *
     * @param area the queue's descriptor area
     * @param tag the request tag, from 0 to depth - 1
     * @return {@code op_flags} of the descriptor of {@code tag} in a queue's descriptor area
     */
    public static int descOpFlags(MemorySegment area, int tag) {
        return (int) DESC_OP_FLAGS.get(area, tag * DESC_SIZE);
    }

    /**
     * Reads {@code nr_sectors} of a tag's {@code ublksrv_io_desc}.
     *
     * @param area the queue's descriptor area
     * @param tag the request tag, from 0 to depth - 1
     * @return the value
     */
    public static long descNrSectors(MemorySegment area, int tag) {
        return Integer.toUnsignedLong((int) DESC_NR_SECTORS.get(area, tag * DESC_SIZE));
    }

    /**
     * Reads {@code start_sector} of a tag's {@code ublksrv_io_desc}.
     *
     * @param area the queue's descriptor area
     * @param tag the request tag, from 0 to depth - 1
     * @return the value
     */
    public static long descStartSector(MemorySegment area, int tag) {
        return (long) DESC_START_SECTOR.get(area, tag * DESC_SIZE);
    }

    /**
     * Reads {@code addr} of a tag's {@code ublksrv_io_desc}.
     *
     * @param area the queue's descriptor area
     * @param tag the request tag, from 0 to depth - 1
     * @return the value
     */
    public static long descAddr(MemorySegment area, int tag) {
        return (long) DESC_ADDR.get(area, tag * DESC_SIZE);
    }

    /**
     * The operation, bits 0-7 of {@code op_flags}.
     *
     * @param opFlags the descriptor's {@code op_flags}
     * @return the operation, bits 0-7 of {@code op_flags}
     */
    public static int op(int opFlags) {
        return opFlags & 0xff;
    }

    /**
     * The file offset on {@code /dev/ublkcN} of byte {@code offset} of request (q, tag) under USER_COPY.
     *
     * @param qId the queue id
     * @param tag the request tag, from 0 to depth - 1
     * @param offset the byte offset within the request's data
     * @return the file offset on {@code /dev/ublkcN} of byte {@code offset} of request (q, tag) under USER_COPY
     */
    public static long userCopyOffset(int qId, int tag, long offset) {
        return IO_BUF_OFFSET + ((long) qId << QID_OFF) + ((long) tag << TAG_OFF) + offset;
    }

    /**
     * The mmap offset of queue {@code qId}'s descriptor area: the driver reserves room for the largest depth
     * for every queue, rounded up to a page.
     *
     * @param qId the queue id
     * @param pageSize the page size in bytes
     * @return the mmap offset of queue {@code qId}'s descriptor area: the driver reserves room for the largest depth
     *         for every queue, rounded up to a page
     */
    public static long descAreaOffset(int qId, long pageSize) {
        return CMD_BUF_OFFSET + qId * roundUp(MAX_QUEUE_DEPTH * DESC_SIZE, pageSize);
    }

    /**
     * The length to mmap for a queue of {@code depth} tags.
     *
     * @param depth the tags per queue (requests in flight at most)
     * @param pageSize the page size in bytes
     * @return the length to mmap for a queue of {@code depth} tags
     */
    public static long descAreaLength(int depth, long pageSize) {
        return roundUp(depth * DESC_SIZE, pageSize);
    }

    private static long roundUp(long v, long to) {
        return (v + to - 1) / to * to;
    }

    /**
     * A readable name of an operation.
     *
     * @param op the operation code
     * @return a readable name of an operation
     */
    public static String opName(int op) {
        return switch (op) {
            case OP_READ -> "READ";
            case OP_WRITE -> "WRITE";
            case OP_FLUSH -> "FLUSH";
            case OP_DISCARD -> "DISCARD";
            case OP_WRITE_SAME -> "WRITE_SAME";
            case OP_WRITE_ZEROES -> "WRITE_ZEROES";
            case OP_ZONE_OPEN -> "ZONE_OPEN";
            case OP_ZONE_CLOSE -> "ZONE_CLOSE";
            case OP_ZONE_FINISH -> "ZONE_FINISH";
            case OP_ZONE_APPEND -> "ZONE_APPEND";
            case OP_ZONE_RESET_ALL -> "ZONE_RESET_ALL";
            case OP_ZONE_RESET -> "ZONE_RESET";
            case OP_REPORT_ZONES -> "REPORT_ZONES";
            default -> "OP_" + op;
        };
    }
}

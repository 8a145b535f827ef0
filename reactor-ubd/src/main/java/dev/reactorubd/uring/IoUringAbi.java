package dev.reactorubd.uring;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

/** The parts of the io_uring ABI ({@code include/uapi/linux/io_uring.h}) that {@link ControlRing} uses. */
public final class IoUringAbi {
    // opcodes
    /** {@code IORING_OP_NOP}. */
    public static final int OP_NOP = 0;
    /** {@code IORING_OP_ASYNC_CANCEL}. */
    public static final int OP_ASYNC_CANCEL = 14;
    /** {@code IORING_OP_URING_CMD}. */
    public static final int OP_URING_CMD = 46;
    /** {@code IORING_OP_FSYNC}. */
    public static final int OP_FSYNC = 3;
    /** {@code IORING_OP_FALLOCATE}. */
    public static final int OP_FALLOCATE = 17;
    /** {@code IORING_OP_SEND}: {@code send(2)} on a socket, with the SQE's {@code msg_flags}. */
    public static final int OP_SEND = 26;
    /** {@code MSG_WAITALL} for {@link #OP_SEND}: io_uring retries a short send until every byte is sent or it fails. */
    public static final int MSG_WAITALL = 0x100;
    /** {@code MSG_NOSIGNAL}: a send to a socket whose peer is gone fails with EPIPE instead of raising SIGPIPE. */
    public static final int MSG_NOSIGNAL = 0x4000;
    /** {@code IORING_OP_READ}. */
    public static final int OP_READ = 22;
    /** {@code IORING_OP_WRITE}. */
    public static final int OP_WRITE = 23;

    /** {@code fsync_flags}: fdatasync rather than fsync. */
    public static final int FSYNC_DATASYNC = 1;
    /**
     * {@code IOSQE_IO_LINK}, an SQE flag: the next SQE of the same submission starts only once this one succeeded (for
     * a read or write: moved every byte it was asked to), and completes with {@code -ECANCELED} otherwise.
     */
    public static final int IOSQE_IO_LINK = 1 << 2;
    /** {@code rw_flags} of a WRITE: the write is durable when it completes (per-write O_DSYNC). */
    public static final int RWF_DSYNC = 2;
    /** fallocate modes (the SQE's {@code len}). */
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    /** {@code FALLOC_FL_PUNCH_HOLE}: a mode of {@code fallocate}. */
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    /** {@code FALLOC_FL_ZERO_RANGE}: a mode of {@code fallocate}. */
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    /**
     * {@code BLOCK_URING_CMD_DISCARD} ({@code _IO(0x12, 0)}, Linux 6.12): a URING_CMD on a block device that discards
     * {@code addr3} bytes at byte {@code addr}.
     */
    public static final int BLOCK_URING_CMD_DISCARD = 0x1200;
    /** {@code IORING_OP_READ_FIXED}: a read into a registered (fixed) buffer, named by the SQE's {@code buf_index}. */
    public static final int OP_READ_FIXED = 4;
    /** {@code IORING_OP_WRITE_FIXED}: a write from a registered (fixed) buffer, named by the SQE's {@code buf_index}. */
    public static final int OP_WRITE_FIXED = 5;

    // io_uring_register opcodes and their arguments
    /** {@code IORING_REGISTER_BUFFERS2}: registers a buffer table described by a {@code struct io_uring_rsrc_register}. */
    public static final int REGISTER_BUFFERS2 = 15;
    /** {@code IORING_REGISTER_BUFFERS_UPDATE}: replaces table slots, described by a {@code struct io_uring_rsrc_update2}. */
    public static final int REGISTER_BUFFERS_UPDATE = 16;
    /** {@code IORING_RSRC_REGISTER_SPARSE}: a table of empty slots, to be filled later (by ublk, for one). */
    public static final int RSRC_REGISTER_SPARSE = 1;
    /** Size of {@code struct io_uring_rsrc_register} and of {@code struct io_uring_rsrc_update2}. */
    public static final int RSRC_STRUCT_SIZE = 32;
    /** {@code IORING_MAX_REG_BUFFERS}: the most slots a ring's buffer table may have. */
    public static final int MAX_REG_BUFFERS = 1 << 14;

    /** {@code BLKGETSIZE64} ({@code _IOR(0x12, 114, size_t)}): a block device's size in bytes. */
    public static final long BLKGETSIZE64 = 0x80081272L;

    // setup flags
    /** {@code IORING_SETUP_CQSIZE}. */
    public static final int SETUP_CQSIZE = 1 << 3;
    /** {@code IORING_SETUP_CLAMP}. */
    public static final int SETUP_CLAMP = 1 << 4;
    /** 128-byte SQEs: what ublk's control commands need. */
    public static final int SETUP_SQE128 = 1 << 10;

    // features
    /** {@code IORING_FEAT_SINGLE_MMAP}. */
    public static final int FEAT_SINGLE_MMAP = 1 << 0;

    // enter flags
    /** {@code IORING_ENTER_GETEVENTS}. */
    public static final int ENTER_GETEVENTS = 1;

    // mmap offsets
    /** {@code IORING_OFF_SQ_RING}. */
    public static final long OFF_SQ_RING = 0L;
    /** {@code IORING_OFF_CQ_RING}. */
    public static final long OFF_CQ_RING = 0x8000000L;
    /** {@code IORING_OFF_SQES}. */
    public static final long OFF_SQES = 0x10000000L;

    // SQE field offsets
    /** The byte offset of {@code opcode} in {@code struct io_uring_sqe}. */
    public static final long SQE_OPCODE = 0;
    /** The byte offset of {@code flags} in {@code struct io_uring_sqe}. */
    public static final long SQE_FLAGS = 1;
    /** The byte offset of {@code ioprio} in {@code struct io_uring_sqe}. */
    public static final long SQE_IOPRIO = 2;
    /** The byte offset of {@code fd} in {@code struct io_uring_sqe}. */
    public static final long SQE_FD = 4;
    /** {@code off}, or {@code cmd_op} (u32) for URING_CMD. */
    public static final long SQE_OFF = 8;
    /** The byte offset of {@code addr} in {@code struct io_uring_sqe}. */
    public static final long SQE_ADDR = 16;
    /** The byte offset of {@code len} in {@code struct io_uring_sqe}. */
    public static final long SQE_LEN = 24;
    /** The byte offset of {@code op_flags} in {@code struct io_uring_sqe}. */
    public static final long SQE_OP_FLAGS = 28;
    /** The byte offset of {@code user_data} in {@code struct io_uring_sqe}. */
    public static final long SQE_USER_DATA = 32;
    /** Start of the command payload of URING_CMD (16 bytes in a 64-byte SQE, 80 in a 128-byte one). */
    public static final long SQE_CMD = 48;
    /** The size in bytes of {@code struct io_uring_sqe}. in a ring set up with {@code IORING_SETUP_SQE128} */
    public static final long SQE128_SIZE = 128;

    // CQE field offsets
    /** The byte offset of {@code user_data} in {@code struct io_uring_cqe}. */
    public static final long CQE_USER_DATA = 0;
    /** The byte offset of {@code res} in {@code struct io_uring_cqe}. */
    public static final long CQE_RES = 8;
    /** The byte offset of {@code flags} in {@code struct io_uring_cqe}. */
    public static final long CQE_FLAGS = 12;
    /** The size in bytes of {@code struct io_uring_cqe}. */
    public static final long CQE_SIZE = 16;

    private static final StructLayout SQRING_OFFSETS = MemoryLayout.structLayout(
            JAVA_INT.withName("head"),
            JAVA_INT.withName("tail"),
            JAVA_INT.withName("ring_mask"),
            JAVA_INT.withName("ring_entries"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("dropped"),
            JAVA_INT.withName("array"),
            JAVA_INT.withName("resv1"),
            JAVA_LONG.withName("user_addr"));
    private static final StructLayout CQRING_OFFSETS = MemoryLayout.structLayout(
            JAVA_INT.withName("head"),
            JAVA_INT.withName("tail"),
            JAVA_INT.withName("ring_mask"),
            JAVA_INT.withName("ring_entries"),
            JAVA_INT.withName("overflow"),
            JAVA_INT.withName("cqes"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("resv1"),
            JAVA_LONG.withName("user_addr"));

    /** {@code struct io_uring_params} (120 bytes). */
    public static final StructLayout PARAMS = MemoryLayout.structLayout(
            JAVA_INT.withName("sq_entries"),
            JAVA_INT.withName("cq_entries"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("sq_thread_cpu"),
            JAVA_INT.withName("sq_thread_idle"),
            JAVA_INT.withName("features"),
            JAVA_INT.withName("wq_fd"),
            MemoryLayout.sequenceLayout(3, JAVA_INT).withName("resv"),
            SQRING_OFFSETS.withName("sq_off"),
            CQRING_OFFSETS.withName("cq_off"));

    private IoUringAbi() {}

    /**
     * Offset of a field of {@code io_uring_params}: {@code ("flags")} or {@code ("sq_off", "tail")}.
     *
     * @param path the path of the field, as in the kernel header
     * @return offset of a field of {@code io_uring_params}: {@code ("flags")} or {@code ("sq_off", "tail")}
     */
    public static long paramsOffset(String... path) {
        MemoryLayout.PathElement[] p = new MemoryLayout.PathElement[path.length];
        for (int i = 0; i < path.length; i++) {
            p[i] = groupElement(path[i]);
        }
        return PARAMS.byteOffset(p);
    }
}

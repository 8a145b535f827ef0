package dev.reactorubd.uring;

/**
 * One io_uring operation for {@link LoopIo}, made by a factory named after what it does: each factory places its
 * arguments in the SQE fields that operation reads (the kernel reuses {@code off}, {@code addr} and {@code len} for
 * different things from one opcode to the next), so two arguments cannot be swapped into the wrong fields unseen.
 * Immutable; {@link #withRwFlags} gives a copy.
 */
public final class Sqe {
    private final int opcode;
    private final int fd;
    private final long off;
    private final long addr;
    private final int len;
    private final int opFlags;
    private final int bufIndex;
    private final long addr3;

    private Sqe(int opcode, int fd, long off, long addr, int len, int opFlags, int bufIndex, long addr3) {
        this.opcode = opcode;
        this.fd = fd;
        this.off = off;
        this.addr = addr;
        this.len = len;
        this.opFlags = opFlags;
        this.bufIndex = bufIndex;
        this.addr3 = addr3;
    }

    /**
     * {@code IORING_OP_READ}: reads {@code length} bytes at {@code offset} of {@code fd} into memory.
     *
     * @param fd the file descriptor
     * @param offset the file offset
     * @param address where the bytes go
     * @param length how many bytes
     * @return the operation
     */
    public static Sqe read(int fd, long offset, long address, int length) {
        return new Sqe(IoUringAbi.OP_READ, fd, offset, address, length, 0, 0, 0L);
    }

    /**
     * {@code IORING_OP_WRITE}: writes {@code length} bytes from memory at {@code offset} of {@code fd}.
     *
     * @param fd the file descriptor
     * @param offset the file offset
     * @param address where the bytes are
     * @param length how many bytes
     * @return the operation
     */
    public static Sqe write(int fd, long offset, long address, int length) {
        return new Sqe(IoUringAbi.OP_WRITE, fd, offset, address, length, 0, 0, 0L);
    }

    /**
     * {@code IORING_OP_READ_FIXED}: a read into slot {@code bufIndex} of the ring's buffer table. {@link LoopIo}
     * refuses it with EFAULT, without reaching the kernel, when the slot belongs to a request already answered.
     *
     * @param fd the file descriptor
     * @param offset the file offset
     * @param address an address inside the registered buffer (its offset, for a buffer the kernel registered)
     * @param length how many bytes
     * @param bufIndex the slot of the ring's buffer table
     * @return the operation
     */
    public static Sqe readFixed(int fd, long offset, long address, int length, int bufIndex) {
        return new Sqe(IoUringAbi.OP_READ_FIXED, fd, offset, address, length, 0, bufIndex, 0L);
    }

    /**
     * {@code IORING_OP_WRITE_FIXED}: a write from slot {@code bufIndex} of the ring's buffer table (also a send, on a
     * socket, with {@code offset} 0). Guarded as {@link #readFixed} is.
     *
     * @param fd the file descriptor
     * @param offset the file offset (0 for a socket)
     * @param address an address inside the registered buffer (its offset, for a buffer the kernel registered)
     * @param length how many bytes
     * @param bufIndex the slot of the ring's buffer table
     * @return the operation
     */
    public static Sqe writeFixed(int fd, long offset, long address, int length, int bufIndex) {
        return new Sqe(IoUringAbi.OP_WRITE_FIXED, fd, offset, address, length, 0, bufIndex, 0L);
    }

    /**
     * {@code IORING_OP_SEND}: sends {@code length} bytes from memory on a socket.
     *
     * @param fd the socket
     * @param address where the bytes are
     * @param length how many bytes
     * @param msgFlags {@code MSG_*} flags
     * @return the operation
     */
    public static Sqe send(int fd, long address, int length, int msgFlags) {
        return new Sqe(IoUringAbi.OP_SEND, fd, 0L, address, length, msgFlags, 0, 0L);
    }

    /**
     * {@code IORING_OP_FSYNC}: {@code fsync}, or {@code fdatasync} with {@link IoUringAbi#FSYNC_DATASYNC}.
     *
     * @param fd the file descriptor
     * @param fsyncFlags 0 or {@link IoUringAbi#FSYNC_DATASYNC}
     * @return the operation
     */
    public static Sqe fsync(int fd, int fsyncFlags) {
        return new Sqe(IoUringAbi.OP_FSYNC, fd, 0L, 0L, 0, fsyncFlags, 0, 0L);
    }

    /**
     * {@code IORING_OP_FALLOCATE}: {@code fallocate(fd, mode, offset, length)}. The kernel reads the length from the
     * SQE's {@code addr} and the mode from its {@code len}.
     *
     * @param fd the file descriptor
     * @param mode {@code FALLOC_FL_*} flags
     * @param offset the first byte
     * @param length how many bytes
     * @return the operation
     */
    public static Sqe fallocate(int fd, int mode, long offset, long length) {
        return new Sqe(IoUringAbi.OP_FALLOCATE, fd, offset, length, mode, 0, 0, 0L);
    }

    /**
     * {@code BLOCK_URING_CMD_DISCARD} on a block device (Linux 6.12+): discards {@code length} bytes at
     * {@code offset}. The kernel reads the command from the SQE's {@code off}, the offset from {@code addr} and the
     * length from {@code addr3}.
     *
     * @param fd the block device
     * @param offset the first byte
     * @param length how many bytes
     * @return the operation
     */
    public static Sqe blockDiscard(int fd, long offset, long length) {
        return new Sqe(IoUringAbi.OP_URING_CMD, fd, IoUringAbi.BLOCK_URING_CMD_DISCARD, offset, 0, 0, 0, length);
    }

    /**
     * {@code IORING_OP_NOP}: does nothing, and completes with 0.
     *
     * @return the operation
     */
    public static Sqe nop() {
        return new Sqe(IoUringAbi.OP_NOP, -1, 0L, 0L, 0, 0, 0, 0L);
    }

    /**
     * A copy with {@code rw_flags} set, for a read or a write ({@code RWF_DSYNC} for a FUA write, for example).
     *
     * @param rwFlags {@code RWF_*} flags
     * @return the copy
     * @throws IllegalStateException for an operation that is not a read or a write
     */
    public Sqe withRwFlags(int rwFlags) {
        if (opcode != IoUringAbi.OP_READ && opcode != IoUringAbi.OP_WRITE && !isFixed()) {
            throw new IllegalStateException("rw_flags belong to reads and writes, not to opcode " + opcode);
        }
        return new Sqe(opcode, fd, off, addr, len, rwFlags, bufIndex, addr3);
    }

    /** {@return the io_uring opcode ({@code IoUringAbi.OP_*})} */
    public int opcode() {
        return opcode;
    }

    /** {@return whether it names a slot of the ring's buffer table: READ_FIXED or WRITE_FIXED} */
    public boolean isFixed() {
        return opcode == IoUringAbi.OP_READ_FIXED || opcode == IoUringAbi.OP_WRITE_FIXED;
    }

    int fd() {
        return fd;
    }

    long off() {
        return off;
    }

    long addr() {
        return addr;
    }

    int len() {
        return len;
    }

    int opFlags() {
        return opFlags;
    }

    int bufIndex() {
        return bufIndex;
    }

    long addr3() {
        return addr3;
    }

    @Override
    public String toString() {
        return "Sqe[opcode " + opcode + ", fd " + fd + ", off " + off + ", addr 0x" + Long.toHexString(addr) + ", len "
                + len + (bufIndex != 0 || isFixed() ? ", buf " + bufIndex : "") + "]";
    }
}

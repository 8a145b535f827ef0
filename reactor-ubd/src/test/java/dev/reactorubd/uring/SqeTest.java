package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Each factory puts its arguments in the SQE fields the kernel reads them from for that opcode. */
class SqeTest {
    private static void assertFields(
            Sqe s, int opcode, int fd, long off, long addr, int len, int opFlags, int bufIndex, long addr3) {
        assertEquals(opcode, s.opcode(), "opcode of " + s);
        assertEquals(fd, s.fd(), "fd of " + s);
        assertEquals(off, s.off(), "off of " + s);
        assertEquals(addr, s.addr(), "addr of " + s);
        assertEquals(len, s.len(), "len of " + s);
        assertEquals(opFlags, s.opFlags(), "op flags of " + s);
        assertEquals(bufIndex, s.bufIndex(), "buf index of " + s);
        assertEquals(addr3, s.addr3(), "addr3 of " + s);
    }

    @Test
    void readsAndWritesTakeTheOffsetAtOffAndTheBufferAtAddr() {
        assertFields(Sqe.read(3, 4096, 0x1000, 512), IoUringAbi.OP_READ, 3, 4096, 0x1000, 512, 0, 0, 0);
        assertFields(
                Sqe.write(3, 8192, 0x2000, 1024).withRwFlags(IoUringAbi.RWF_DSYNC),
                IoUringAbi.OP_WRITE,
                3,
                8192,
                0x2000,
                1024,
                IoUringAbi.RWF_DSYNC,
                0,
                0);
        assertFields(Sqe.readFixed(5, 1 << 20, 0, 4096, 7), IoUringAbi.OP_READ_FIXED, 5, 1 << 20, 0, 4096, 0, 7, 0);
        assertFields(Sqe.writeFixed(5, 0, 64, 4096, 9), IoUringAbi.OP_WRITE_FIXED, 5, 0, 64, 4096, 0, 9, 0);
        assertTrue(Sqe.readFixed(5, 0, 0, 1, 0).isFixed());
        assertFalse(Sqe.read(5, 0, 0, 1).isFixed());
    }

    @Test
    void theOtherOperationsUseTheFieldsTheirOpcodeReads() {
        assertFields(
                Sqe.send(4, 0x3000, 100, IoUringAbi.MSG_NOSIGNAL),
                IoUringAbi.OP_SEND,
                4,
                0,
                0x3000,
                100,
                IoUringAbi.MSG_NOSIGNAL,
                0,
                0);
        assertFields(
                Sqe.fsync(6, IoUringAbi.FSYNC_DATASYNC),
                IoUringAbi.OP_FSYNC,
                6,
                0,
                0,
                0,
                IoUringAbi.FSYNC_DATASYNC,
                0,
                0);
        // fallocate(fd, mode, offset, length): the length goes in addr, the mode in len.
        assertFields(
                Sqe.fallocate(6, IoUringAbi.FALLOC_FL_PUNCH_HOLE, 4096, 1L << 33),
                IoUringAbi.OP_FALLOCATE,
                6,
                4096,
                1L << 33,
                IoUringAbi.FALLOC_FL_PUNCH_HOLE,
                0,
                0,
                0);
        // The block device's discard command: cmd_op in off, the range in addr and addr3.
        assertFields(
                Sqe.blockDiscard(7, 4096, 1L << 32),
                IoUringAbi.OP_URING_CMD,
                7,
                IoUringAbi.BLOCK_URING_CMD_DISCARD,
                4096,
                0,
                0,
                0,
                1L << 32);
        assertFields(Sqe.nop(), IoUringAbi.OP_NOP, -1, 0, 0, 0, 0, 0, 0);
    }

    @Test
    void rwFlagsBelongToReadsAndWritesOnly() {
        assertThrows(IllegalStateException.class, () -> Sqe.fsync(6, 0).withRwFlags(IoUringAbi.RWF_DSYNC));
        assertThrows(IllegalStateException.class, () -> Sqe.nop().withRwFlags(1));
    }
}

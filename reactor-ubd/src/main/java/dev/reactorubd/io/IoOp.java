package dev.reactorubd.io;

import dev.reactorubd.sys.UblkIo;

/** The operation of a block request. */
public enum IoOp {
    READ(UblkIo.OP_READ),
    WRITE(UblkIo.OP_WRITE),
    FLUSH(UblkIo.OP_FLUSH),
    DISCARD(UblkIo.OP_DISCARD),
    WRITE_SAME(UblkIo.OP_WRITE_SAME),
    WRITE_ZEROES(UblkIo.OP_WRITE_ZEROES),
    /** Any operation this library does not serve (zoned operations): answered with EOPNOTSUPP. */
    OTHER(-1);

    private final int code;

    IoOp(int code) {
        this.code = code;
    }

    /** The kernel's code ({@code UBLK_IO_OP_*}), or -1 for {@link #OTHER}. */
    public int code() {
        return code;
    }

    public static IoOp of(int code) {
        return switch (code) {
            case UblkIo.OP_READ -> READ;
            case UblkIo.OP_WRITE -> WRITE;
            case UblkIo.OP_FLUSH -> FLUSH;
            case UblkIo.OP_DISCARD -> DISCARD;
            case UblkIo.OP_WRITE_SAME -> WRITE_SAME;
            case UblkIo.OP_WRITE_ZEROES -> WRITE_ZEROES;
            default -> OTHER;
        };
    }

    /** Whether the kernel expects the byte count as the result (READ and WRITE) rather than 0. */
    boolean returnsBytes() {
        return this == READ || this == WRITE;
    }
}

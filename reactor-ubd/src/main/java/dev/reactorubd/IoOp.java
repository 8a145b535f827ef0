package dev.reactorubd;

import dev.reactorubd.sys.UblkIo;

/** The operation of a block request. */
public enum IoOp {
    /** Read {@code length} bytes at {@code offset}: answer with the data. */
    READ(UblkIo.OP_READ),
    /** Write the request's data at {@code offset}. */
    WRITE(UblkIo.OP_WRITE),
    /** Make completed writes durable (sent only to devices with a volatile cache). */
    FLUSH(UblkIo.OP_FLUSH),
    /** Discard a range: its contents become undefined. */
    DISCARD(UblkIo.OP_DISCARD),
    /** {@code WRITE_SAME}: not sent by Linux to ublk devices; answered with EOPNOTSUPP. */
    WRITE_SAME(UblkIo.OP_WRITE_SAME),
    /** Zero a range, keeping it allocated when the request has NOUNMAP. */
    WRITE_ZEROES(UblkIo.OP_WRITE_ZEROES),
    /** Any operation this library does not serve (zoned operations): answered with EOPNOTSUPP. */
    OTHER(-1);

    private final int code;

    IoOp(int code) {
        this.code = code;
    }

    /** {@return the kernel's code ({@code UBLK_IO_OP_*}), or -1 for {@link #OTHER}} */
    public int code() {
        return code;
    }

    /**
     * The operation of a kernel code.
     *
     * @param code the kernel's code ({@code UBLK_IO_OP_*})
     * @return the operation, or {@link #OTHER} for a code this library does not serve
     */
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
}

package dev.reactorubd.sys;

/**
 * The Linux {@code _IOC} encoding of ioctl numbers, which ublk uses for its io_uring command opcodes
 * ({@code UBLK_F_CMD_IOCTL_ENCODE}): direction in bits 30-31, argument size in bits 16-29, type in bits 8-15 and
 * number in bits 0-7.
 */
public final class Ioctl {
    /** {@code _IOC_WRITE}: userspace writes the argument. */
    public static final int WRITE = 1;
    /** {@code _IOC_READ}: userspace reads the argument. */
    public static final int READ = 2;

    private Ioctl() {}

    /**
     * {@code _IOC(dir, type, nr, size)}.
     *
     * @param dir the direction bits
     * @param type the ioctl type character
     * @param nr the command number
     * @param size the size in bytes
     * @return {@code _IOC(dir, type, nr, size)}
     */
    public static int ioc(int dir, char type, int nr, long size) {
        if (size < 0 || size >= (1 << 14)) {
            throw new IllegalArgumentException("ioctl argument size out of range: " + size);
        }
        return (dir << 30) | ((int) size << 16) | ((type & 0xff) << 8) | (nr & 0xff);
    }

    /**
     * {@code _IOR(type, nr, size)}.
     *
     * @param type the ioctl type character
     * @param nr the command number
     * @param size the size in bytes
     * @return {@code _IOR(type, nr, size)}
     */
    public static int ior(char type, int nr, long size) {
        return ioc(READ, type, nr, size);
    }

    /**
     * {@code _IOWR(type, nr, size)}.
     *
     * @param type the ioctl type character
     * @param nr the command number
     * @param size the size in bytes
     * @return {@code _IOWR(type, nr, size)}
     */
    public static int iowr(char type, int nr, long size) {
        return ioc(READ | WRITE, type, nr, size);
    }

    /**
     * The command number (bits 0-7) of an encoded opcode.
     *
     * @param opcode the ioctl-encoded opcode
     * @return the command number (bits 0-7) of an encoded opcode
     */
    public static int nr(int opcode) {
        return opcode & 0xff;
    }
}

package dev.reactorubd.ctrl;

import java.util.EnumSet;
import java.util.Set;

/**
 * Feature bits of {@code ublksrv_ctrl_dev_info.flags} ({@code UBLK_F_*}), as requested by ADD_DEV and reported by
 * GET_FEATURES, with the kernel release that added each.
 */
public enum UblkFeature {
    /** {@code UBLK_F_SUPPORT_ZERO_COPY} (bit 0), since Linux 6.15. */
    SUPPORT_ZERO_COPY(0, "6.15"),
    /** {@code UBLK_F_URING_CMD_COMP_IN_TASK} (bit 1), since Linux 6.0. */
    URING_CMD_COMP_IN_TASK(1, "6.0"),
    /** {@code UBLK_F_NEED_GET_DATA} (bit 2), since Linux 6.0. */
    NEED_GET_DATA(2, "6.0"),
    /** {@code UBLK_F_USER_RECOVERY} (bit 3), since Linux 6.0. */
    USER_RECOVERY(3, "6.0"),
    /** {@code UBLK_F_USER_RECOVERY_REISSUE} (bit 4), since Linux 6.0. */
    USER_RECOVERY_REISSUE(4, "6.0"),
    /** {@code UBLK_F_UNPRIVILEGED_DEV} (bit 5), since Linux 6.5. */
    UNPRIVILEGED_DEV(5, "6.5"),
    /** {@code UBLK_F_CMD_IOCTL_ENCODE} (bit 6), since Linux 6.5. */
    CMD_IOCTL_ENCODE(6, "6.5"),
    /** {@code UBLK_F_USER_COPY} (bit 7), since Linux 6.5. */
    USER_COPY(7, "6.5"),
    /** {@code UBLK_F_ZONED} (bit 8), since Linux 6.6. */
    ZONED(8, "6.6"),
    /** {@code UBLK_F_USER_RECOVERY_FAIL_IO} (bit 9), since Linux 6.13. */
    USER_RECOVERY_FAIL_IO(9, "6.13"),
    /** {@code UBLK_F_UPDATE_SIZE} (bit 10), since Linux 6.16. */
    UPDATE_SIZE(10, "6.16"),
    /** {@code UBLK_F_AUTO_BUF_REG} (bit 11), since Linux 6.16. */
    AUTO_BUF_REG(11, "6.16"),
    /** {@code UBLK_F_QUIESCE} (bit 12), since Linux 6.16. */
    QUIESCE(12, "6.16"),
    /** {@code UBLK_F_PER_IO_DAEMON} (bit 13), since Linux 6.16. */
    PER_IO_DAEMON(13, "6.16"),
    /** {@code UBLK_F_BUF_REG_OFF_DAEMON} (bit 14), since Linux 6.17. */
    BUF_REG_OFF_DAEMON(14, "6.17"),
    /** {@code UBLK_F_BATCH_IO} (bit 15), since Linux 7.0. */
    BATCH_IO(15, "7.0"),
    /** {@code UBLK_F_INTEGRITY} (bit 16), since Linux 7.0. */
    INTEGRITY(16, "7.0"),
    /** {@code UBLK_F_SAFE_STOP_DEV} (bit 17), since Linux 6.19. */
    SAFE_STOP_DEV(17, "6.19"),
    /** {@code UBLK_F_NO_AUTO_PART_SCAN} (bit 18), since Linux 7.0. */
    NO_AUTO_PART_SCAN(18, "7.0"),
    /** {@code UBLK_F_SHMEM_ZC} (bit 19), since Linux 7.1. */
    SHMEM_ZC(19, "7.1");

    private final int bit;
    private final String since;

    UblkFeature(int bit, String since) {
        this.bit = bit;
        this.since = since;
    }

    /** {@return the bit number in the 64-bit feature mask} */
    public int bit() {
        return bit;
    }

    /** {@return the mask value, {@code 1L << bit()}} */
    public long mask() {
        return 1L << bit;
    }

    /** {@return the first Linux release that has the feature} */
    public String since() {
        return since;
    }

    /**
     * The features whose bits are set in {@code mask}; unknown bits are ignored.
     *
     * @param mask a 64-bit feature mask
     * @return the features whose bits are set in {@code mask}; unknown bits are ignored
     */
    public static Set<UblkFeature> fromMask(long mask) {
        EnumSet<UblkFeature> set = EnumSet.noneOf(UblkFeature.class);
        for (UblkFeature f : values()) {
            if ((mask & f.mask()) != 0) {
                set.add(f);
            }
        }
        return set;
    }

    /**
     * The mask of a set of features.
     *
     * @param features the features
     * @return the mask of a set of features
     */
    public static long toMask(Set<UblkFeature> features) {
        long mask = 0;
        for (UblkFeature f : features) {
            mask |= f.mask();
        }
        return mask;
    }
}

package dev.reactorubd.sys;

import java.util.EnumSet;
import java.util.Set;

/**
 * Feature bits of {@code ublksrv_ctrl_dev_info.flags} ({@code UBLK_F_*}), as requested by ADD_DEV and reported by
 * GET_FEATURES, with the kernel release that added each.
 */
public enum UblkFeature {
    SUPPORT_ZERO_COPY(0, "6.15"),
    URING_CMD_COMP_IN_TASK(1, "6.0"),
    NEED_GET_DATA(2, "6.0"),
    USER_RECOVERY(3, "6.0"),
    USER_RECOVERY_REISSUE(4, "6.0"),
    UNPRIVILEGED_DEV(5, "6.5"),
    CMD_IOCTL_ENCODE(6, "6.5"),
    USER_COPY(7, "6.5"),
    ZONED(8, "6.6"),
    USER_RECOVERY_FAIL_IO(9, "6.13"),
    UPDATE_SIZE(10, "6.16"),
    AUTO_BUF_REG(11, "6.16"),
    QUIESCE(12, "6.16"),
    PER_IO_DAEMON(13, "6.16"),
    BUF_REG_OFF_DAEMON(14, "6.17"),
    BATCH_IO(15, "7.0"),
    INTEGRITY(16, "7.0"),
    SAFE_STOP_DEV(17, "6.19"),
    NO_AUTO_PART_SCAN(18, "7.0"),
    SHMEM_ZC(19, "7.1");

    private final int bit;
    private final String since;

    UblkFeature(int bit, String since) {
        this.bit = bit;
        this.since = since;
    }

    /** The bit number in the 64-bit feature mask. */
    public int bit() {
        return bit;
    }

    /** The mask value, {@code 1L << bit()}. */
    public long mask() {
        return 1L << bit;
    }

    /** The first Linux release that has the feature. */
    public String since() {
        return since;
    }

    /** The features whose bits are set in {@code mask}; unknown bits are ignored. */
    public static Set<UblkFeature> fromMask(long mask) {
        EnumSet<UblkFeature> set = EnumSet.noneOf(UblkFeature.class);
        for (UblkFeature f : values()) {
            if ((mask & f.mask()) != 0) {
                set.add(f);
            }
        }
        return set;
    }

    /** The mask of a set of features. */
    public static long toMask(Set<UblkFeature> features) {
        long mask = 0;
        for (UblkFeature f : features) {
            mask |= f.mask();
        }
        return mask;
    }
}

package dev.reactorubd.ctrl;

/** Device states of {@code ublksrv_ctrl_dev_info.state} ({@code UBLK_S_DEV_*}). */
public enum UblkDevState {
    /** Added but not started, or stopped, or its server died without recovery. */
    DEAD(0),
    /** Started and serving. */
    LIVE(1),
    /** Its server died and the device waits for a new one (user recovery). */
    QUIESCED(2),
    /** Its server died and IO fails until a new one recovers the device (Linux 6.13). */
    FAIL_IO(3),
    /** A value this library does not know. */
    UNKNOWN(-1);

    private final int value;

    UblkDevState(int value) {
        this.value = value;
    }

    /** {@return the kernel's value ({@code UBLK_S_DEV_*})} */
    public int value() {
        return value;
    }

    /**
     * The state of a kernel value.
     *
     * @param value the kernel's value
     * @return the state, or {@link #UNKNOWN}
     */
    public static UblkDevState of(int value) {
        for (UblkDevState s : values()) {
            if (s.value == value) {
                return s;
            }
        }
        return UNKNOWN;
    }
}

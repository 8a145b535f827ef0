package dev.reactorubd.samples;

import dev.reactorubd.ctrl.UblkFeature;
import java.util.List;

/**
 * What a recoverable device's IO does while no server runs (between a crash and {@code ubd recover}): the flags of
 * {@code ubd serve --recovery}. Each maps to the kernel's recovery features; a kernel without one of them refuses the
 * device with a typed error that names the feature and the Linux version that added it.
 */
public enum RecoveryMode {
    /** USER_RECOVERY with REISSUE: IO waits for the new server; requests in flight at the crash are issued again. */
    REISSUE(List.of(UblkFeature.USER_RECOVERY, UblkFeature.USER_RECOVERY_REISSUE)),
    /** USER_RECOVERY alone: IO waits for the new server; requests in flight at the crash are requeued. */
    REQUEUE(List.of(UblkFeature.USER_RECOVERY)),
    /** USER_RECOVERY with FAIL_IO (Linux 6.13+): IO fails at once with an I/O error (EREMOTEIO on Linux 6.18) until a new server recovers the device. */
    FAIL_IO(List.of(UblkFeature.USER_RECOVERY, UblkFeature.USER_RECOVERY_FAIL_IO));

    private final List<UblkFeature> features;

    RecoveryMode(List<UblkFeature> features) {
        this.features = features;
    }

    /** {@return the features a device added in this mode asks of the kernel} */
    public List<UblkFeature> features() {
        return features;
    }
}

package dev.reactorubd.samples;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import picocli.CommandLine.Option;

/**
 * The options of one device that {@code ubd serve} adds: its geometry, id, recovery mode and whether it is handed over
 * at the end. The same on the command line and on each line of a {@code serve --config} file.
 */
final class DeviceOptions {
    @Option(names = "--queues", defaultValue = "1", description = "hardware queues (default ${DEFAULT-VALUE})")
    int queues;

    @Option(names = "--depth", defaultValue = "128", description = "tags per queue (default ${DEFAULT-VALUE})")
    int depth;

    @Option(names = "--block-size", defaultValue = "512", description = "logical block size (default ${DEFAULT-VALUE})")
    int blockSize;

    @Option(names = "--id", defaultValue = "-1", description = "device id (default: the kernel picks)")
    int id;

    @Option(
            names = "--recoverable",
            description = "add the device with USER_RECOVERY and "
                    + "USER_RECOVERY_REISSUE, so that `ubd recover` can take it over if this process dies "
                    + "(the same as --recovery REISSUE)")
    boolean recoverable;

    @Option(
            names = "--recovery",
            description = "make the device recoverable, choosing what its IO does while "
                    + "no server runs: REISSUE (waits; requests in flight at the crash are issued again), REQUEUE "
                    + "(waits; in-flight requests are requeued), FAIL_IO (fails at once with an I/O error, EREMOTEIO "
                    + "on 6.18; Linux 6.13+, an older kernel refuses it with exit status 3)")
    RecoveryMode recovery;

    @Option(
            names = "--handover",
            description = "on SIGINT or SIGTERM, quiesce the device and leave it for "
                    + "`ubd recover` to take over (a live upgrade: IO waits meanwhile, none is lost) instead of stopping "
                    + "and deleting it; needs --recovery or --recoverable, and QUIESCE (Linux 6.16+; an older kernel "
                    + "refuses it with exit status 3)")
    boolean handover;

    /** {@return the recovery mode asked, or null for a device that is not recoverable} */
    RecoveryMode recoveryMode() {
        return recovery != null ? recovery : recoverable ? RecoveryMode.REISSUE : null;
    }

    /** The device to add for a target of {@code capacity} bytes; a --handover without a recovery mode is refused. */
    DeviceSpec spec(long capacity, boolean readOnly) {
        DeviceSpec.Builder b = DeviceSpec.builder()
                .capacityBytes(capacity)
                .queues(queues)
                .depth(depth)
                .logicalBlockSize(blockSize)
                .physicalBlockSize(Math.max(blockSize, 4096))
                .deviceId(id)
                .readOnly(readOnly);
        RecoveryMode mode = recoveryMode();
        if (mode != null) {
            mode.features().forEach(b::feature);
        }
        if (handover) {
            if (mode == null) {
                throw new UbdCommand.UsageError("--handover needs --recovery MODE or --recoverable: only a "
                        + "recoverable device can be taken over");
            }
            b.feature(UblkFeature.QUIESCE);
        }
        return b.build();
    }
}

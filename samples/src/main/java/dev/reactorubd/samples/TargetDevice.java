package dev.reactorubd.samples;

import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import java.time.Duration;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

/**
 * One device of {@code ubd serve}, served from the target its options name: the target opened, the device added (or,
 * with an id and a recovery mode, recovered when a dead server left it), and the device following a target that
 * changes size. {@link #release()} closes what was opened for it, after the device is stopped or handed over.
 */
final class TargetDevice {
    final TargetOptions target;
    final DeviceOptions options;
    final UbdDevice device;
    final long size;
    private final Disposable follow;

    private TargetDevice(TargetOptions target, DeviceOptions options, UbdDevice device, long size) {
        this.target = target;
        this.options = options;
        this.device = device;
        this.size = size;
        // An RBD image resized in its cluster: the device follows (UPDATE_SIZE, Linux 6.16+).
        this.follow = target.sizeChanges()
                .concatMap(bytes -> device.resize(bytes / 4096 * 4096)
                        .doOnSuccess(v -> System.err.println(
                                "ubd: " + target.describe() + " is now " + bytes + " bytes: device resized"))
                        .onErrorResume(e -> {
                            System.err.println("ubd: " + target.describe() + " is now " + bytes
                                    + " bytes, but the device could not follow: " + e.getMessage());
                            return Mono.empty();
                        }))
                .subscribe();
    }

    /**
     * Opens the target and serves it on {@code server}: a new device, or the device {@code options.id} taken over when
     * it exists with a recovery mode and its server is gone. On failure nothing stays open and the error is thrown.
     */
    static TargetDevice start(UbdServer server, TargetOptions target, DeviceOptions options) {
        return open(target, options).serveOn(server);
    }

    /**
     * Opens the target and checks the device options against it, before any server exists: a target or options that
     * cannot work fail here without touching ublk. On failure nothing stays open and the error is thrown.
     */
    static Opened open(TargetOptions target, DeviceOptions options) {
        try {
            BlockBackend backend = target.open().block(Duration.ofMinutes(2));
            long size = UbdCommand.capacity(target, backend);
            return new Opened(target, options, backend, size, options.spec(size, target.readOnlyDevice()));
        } catch (RuntimeException e) {
            target.closeAll();
            throw e;
        }
    }

    /** A target opened and a device spec checked, to be served on a server. */
    record Opened(TargetOptions target, DeviceOptions options, BlockBackend backend, long size, DeviceSpec spec) {
        /** Serves the opened target on {@code s}; on failure the target is closed and the error is thrown. */
        TargetDevice serveOn(UbdServer s) {
            try {
                DeviceInfo left = options.recoveryMode() != null && options.id >= 0
                        ? UbdCommand.leftByADeadServer(s, options.id)
                        : null;
                UbdDevice device;
                if (left != null) {
                    // A service manager restarting a crashed `ubd serve --id N --recovery ...`: take the device over,
                    // with the IO that waited for it, instead of failing on an id in use.
                    System.err.println("ubd: device " + options.id + " exists and its server is gone: recovering it "
                            + "instead of adding a new one");
                    device = s.recover(options.id, backend).block(Duration.ofMinutes(2));
                } else {
                    device = s.serve(spec, backend).block(Duration.ofMinutes(2));
                }
                return new TargetDevice(target, options, device, size);
            } catch (RuntimeException e) {
                target.closeAll();
                throw e;
            }
        }
    }

    /** {@return whether SIGINT or SIGTERM hands the device over: asked by --handover, and the device has QUIESCE} */
    boolean handsOver() {
        return options.handover && device.info().has(UblkFeature.QUIESCE);
    }

    /** Stops following the target's size and closes every backend opened for the device. */
    void release() {
        follow.dispose();
        target.closeAll();
    }
}

package dev.reactorubd.spring.boot;

import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import reactor.core.publisher.Mono;

/**
 * The devices of {@code ubd.devices[N]}: served, in order, when the application context starts, and deleted (or handed
 * over, {@link UbdProperties.Shutdown#HAND_OVER}) when it stops, each within its bound ({@code ubd.start-timeout},
 * {@code ubd.stop-timeout}). A device that cannot be served fails the application's start with an
 * {@link IllegalStateException} naming its property and the cause, after the devices already served are deleted.
 * A device with an {@code id} and a {@code recovery} mode that exists already, handed over by the previous run or left
 * by one that crashed, is recovered instead of added.
 *
 * <p>Threading: start and stop run on the thread that starts or stops the context (they block on the kernel and the
 * targets); {@link #devices()} may be called from any thread.
 */
public final class UbdDevices implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(UbdDevices.class);

    /**
     * A served device.
     *
     * @param index      N of its {@code ubd.devices[N]}
     * @param properties its properties
     * @param device     the device
     * @param target     its opened target, which the starter closes after the device
     */
    public record Served(int index, UbdProperties.Device properties, UbdDevice device, TargetSpec.Opened target) {}

    private final UbdServer server;
    private final UbdProperties properties;
    private final TargetPolicy policy;
    private final List<Served> served = new CopyOnWriteArrayList<>();
    private volatile boolean running;

    /**
     * Devices to serve when the context starts.
     *
     * @param server     the server that serves the devices
     * @param properties what to serve
     * @param policy     what the targets may reach
     */
    public UbdDevices(UbdServer server, UbdProperties properties, TargetPolicy policy) {
        this.server = server;
        this.properties = properties;
        this.policy = policy;
    }

    /** {@return the devices served now, in the order of their properties} */
    public List<Served> devices() {
        return List.copyOf(served);
    }

    @Override
    public void start() {
        List<UbdProperties.Device> wanted = properties.devices();
        for (int i = 0; i < wanted.size(); i++) {
            try {
                served.add(serve(i, wanted.get(i)));
            } catch (RuntimeException e) {
                stopAll();
                throw new IllegalStateException(
                        "ubd.devices[" + i + "] (" + wanted.get(i).target() + ") could not be served: "
                                + e.getMessage(),
                        e);
            }
        }
        running = true;
    }

    private Served serve(int index, UbdProperties.Device p) {
        if (p.target() == null || p.target().isBlank()) {
            throw new IllegalArgumentException("ubd.devices[" + index + "].target is not set: give a target spec, "
                    + "e.g. memory:64M or file:/var/lib/ubd/a.img");
        }
        if (p.onShutdown() == UbdProperties.Shutdown.HAND_OVER && p.recovery() == UbdProperties.Recovery.NONE) {
            throw new IllegalArgumentException("ubd.devices[" + index + "].on-shutdown=hand-over needs a recovery "
                    + "mode (ubd.devices[" + index + "].recovery=reissue): only a recoverable device can be taken "
                    + "over");
        }
        Duration bound = properties.startTimeout();
        TargetSpec.Opened target = TargetSpec.open(p.target(), policy, TargetSpec.OpenOptions.defaults())
                .block(bound);
        try {
            long size = p.size() == null || p.size().isBlank()
                    ? target.backend().size()
                    : TargetSpec.parseSize(p.size().strip());
            DeviceSpec.Builder b = DeviceSpec.builder()
                    .capacityBytes(size)
                    .queues(p.queues())
                    .depth(p.depth())
                    .deviceId(p.id())
                    .readOnly(p.readOnly());
            switch (p.recovery()) {
                case NONE -> {}
                case REQUEUE -> b.feature(UblkFeature.USER_RECOVERY);
                case REISSUE -> b.feature(UblkFeature.USER_RECOVERY).feature(UblkFeature.USER_RECOVERY_REISSUE);
                case FAIL_IO -> b.feature(UblkFeature.USER_RECOVERY).feature(UblkFeature.USER_RECOVERY_FAIL_IO);
            }
            if (p.onShutdown() == UbdProperties.Shutdown.HAND_OVER) {
                b.feature(UblkFeature.QUIESCE);
            }
            DeviceInfo left = p.recovery() != UbdProperties.Recovery.NONE && p.id() >= 0 ? leftForUs(index, p) : null;
            UbdDevice device = left != null
                    ? server.recover(p.id(), target.backend()).block(bound)
                    : server.serve(b.build(), target.backend()).block(bound);
            log.info(
                    "ubd.devices[{}]: {} {} {} ({} bytes)",
                    index,
                    device.blockDevicePath(),
                    left != null ? "recovered, serving" : "serves",
                    p.target(),
                    size);
            return new Served(index, p, device, target);
        } catch (RuntimeException e) {
            target.close().onErrorComplete().block(properties.stopTimeout());
            throw e;
        }
    }

    /**
     * The device {@code ubd.devices[index].id} names, when one exists that this run may take over: handed over by
     * its server (QUIESCED), or left by a server that died. Serve-or-recover, so that a restarted application takes
     * its devices back with the IO that waited for them instead of failing on an id in use.
     *
     * @return the device, or null when there is none
     * @throws IllegalStateException when a live server serves it, or it was not added recoverable
     */
    private DeviceInfo leftForUs(int index, UbdProperties.Device p) {
        DeviceInfo d = server.control()
                .deviceInfo(p.id())
                .onErrorResume(UbdNoSuchDeviceException.class, e -> Mono.empty())
                .block(properties.startTimeout());
        if (d == null) {
            return null;
        }
        boolean alive = d.serverPid() > 0
                && ProcessHandle.of(d.serverPid()).map(ProcessHandle::isAlive).orElse(false);
        if (d.state() != UblkDevState.QUIESCED && alive) {
            throw new IllegalStateException("device " + p.id() + " is served by process " + d.serverPid()
                    + ": stop that server first, or give ubd.devices[" + index + "].id another id");
        }
        if (!d.has(UblkFeature.USER_RECOVERY)) {
            throw new IllegalStateException("device " + p.id() + " exists with no server but was not added "
                    + "recoverable, so it cannot be taken over: delete it (ubd remove " + p.id() + ") first");
        }
        return d;
    }

    @Override
    public void stop() {
        running = false;
        stopAll();
    }

    /**
     * Deletes or hands over every device served, the last first, then closes its target; a failure is logged and the
     * others still stop (the context is going away either way).
     */
    private void stopAll() {
        List<Served> all = new ArrayList<>(served);
        served.clear();
        for (int i = all.size() - 1; i >= 0; i--) {
            Served s = all.get(i);
            try {
                if (s.properties().onShutdown() == UbdProperties.Shutdown.HAND_OVER) {
                    s.device().quiesce().block(properties.stopTimeout());
                    log.info(
                            "ubd.devices[{}]: {} handed over",
                            s.index(),
                            s.device().blockDevicePath());
                } else {
                    s.device().close().block(properties.stopTimeout());
                }
            } catch (RuntimeException e) {
                log.warn(
                        "ubd.devices[{}]: {} did not stop: {}",
                        s.index(),
                        s.device().blockDevicePath(),
                        e.toString());
            } finally {
                try {
                    s.target().close().block(properties.stopTimeout());
                } catch (RuntimeException e) {
                    log.warn("ubd.devices[{}]: its target did not close: {}", s.index(), e.toString());
                }
            }
        }
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}

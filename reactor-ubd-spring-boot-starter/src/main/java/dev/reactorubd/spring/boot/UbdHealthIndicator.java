package dev.reactorubd.spring.boot;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.ReplicaState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.ReactiveHealthIndicator;
import org.springframework.boot.health.contributor.Status;
import reactor.core.publisher.Mono;

/**
 * The {@code ubd} component of {@code /actuator/health}: the devices of {@code ubd.devices[N]}.
 * <ul>
 *   <li>{@code UP} while every device is served and every mirror among their targets has every replica IN_SYNC;</li>
 *   <li>{@link #DEGRADED} while a mirror serves with a replica FAILED or RESYNCING: every request is still answered,
 *       with less redundancy than configured. Spring does not know this status: order it and map it in the
 *       application's properties, e.g. {@code management.endpoint.health.status.order=DOWN,OUT_OF_SERVICE,DEGRADED,
 *       UP,UNKNOWN} and {@code management.endpoint.health.status.http-mapping.DEGRADED=503};</li>
 *   <li>{@code DOWN} when a device is no longer served (closed under the application) or a mirror has no replica
 *       IN_SYNC (its reads fail).</li>
 * </ul>
 * Details: each device's block device, target, and its mirrors' replica states.
 *
 * <p>Threading: reads the devices' and mirrors' state (no IO): safe on an event loop.
 */
public final class UbdHealthIndicator implements ReactiveHealthIndicator {
    /** A device serves, but a mirror of its target has a replica that is not IN_SYNC. */
    public static final Status DEGRADED = new Status("DEGRADED", "a mirror has a replica that is not IN_SYNC");

    private final UbdDevices devices;

    /**
     * The health of these devices.
     *
     * @param devices the devices whose health this tells
     */
    public UbdHealthIndicator(UbdDevices devices) {
        this.devices = devices;
    }

    @Override
    public Mono<Health> health() {
        return Mono.fromSupplier(this::now);
    }

    private Health now() {
        Status status = Status.UP;
        Map<String, Object> details = new LinkedHashMap<>();
        for (UbdDevices.Served s : devices.devices()) {
            Map<String, Object> d = new LinkedHashMap<>();
            boolean served = !s.device().isDisposed();
            d.put("blockDevice", s.device().blockDevicePath());
            d.put("target", s.properties().target());
            d.put("served", served);
            if (!served) {
                status = Status.DOWN;
            }
            int m = 0;
            for (BlockBackend b : s.target().owned()) {
                if (b instanceof MirrorBackend mirror) {
                    List<ReplicaState> states = mirror.states();
                    d.put("mirror " + m++, states.stream().map(Enum::name).toList());
                    if (!states.contains(ReplicaState.IN_SYNC)) {
                        status = Status.DOWN;
                    } else if (mirror.isDegraded() && status == Status.UP) {
                        status = DEGRADED;
                    }
                }
            }
            details.put("ubd.devices[" + s.index() + "]", d);
        }
        return Health.status(status).withDetails(details).build();
    }
}

package dev.reactorubd.management;

import dev.reactorubd.spring.boot.UbdHealthIndicator;
import dev.reactorubd.targets.compose.ReplicaState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.ReactiveHealthIndicator;
import org.springframework.boot.health.contributor.Status;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/**
 * The health of the mirrors of the devices this service serves, the {@code mirrors} component of
 * {@code /actuator/health}:
 * <ul>
 *   <li>{@code UP} when every mirror has every replica IN_SYNC (and when there is no mirror);</li>
 *   <li>{@link #DEGRADED} while some replica of some mirror is FAILED or RESYNCING: the device still serves every
 *       request, with less redundancy than it was built with. {@code application.properties} orders it between
 *       {@code OUT_OF_SERVICE} and {@code UP} and maps it to HTTP 503, so that a monitor polling
 *       {@code /actuator/health} sees that something needs an operator; it is not {@code DOWN}, which would say the
 *       service does not work. The liveness and readiness groups ({@code /actuator/health/liveness},
 *       {@code /readiness}) do not include it: a degraded mirror is no reason to restart the service or to stop
 *       sending it requests;</li>
 *   <li>{@code DOWN} when a mirror has no replica IN_SYNC: its device fails every read.</li>
 * </ul>
 * The details name each device's mirrors with their replicas' states and dirty regions.
 *
 * <h2>Threading</h2>
 * Reads the mirrors' atomics (no IO, no lock held long): runs on the thread that asks, an event loop included.
 */
@Component("mirrorsHealthIndicator")
public class MirrorHealthIndicator implements ReactiveHealthIndicator {
    /** A mirror serves but some replica is not in sync. */
    public static final Status DEGRADED = UbdHealthIndicator.DEGRADED;

    private final DeviceManager devices;

    public MirrorHealthIndicator(DeviceManager devices) {
        this.devices = devices;
    }

    @Override
    public Mono<Health> health() {
        return Mono.fromSupplier(() -> health(devices.mirrors()));
    }

    /** The health of these mirrors, by device id: the worst of them (DOWN, then DEGRADED, else UP). */
    static Health health(SortedMap<Integer, List<MirrorView>> mirrors) {
        Status status = Status.UP;
        Map<String, Object> details = new LinkedHashMap<>();
        for (Map.Entry<Integer, List<MirrorView>> e : mirrors.entrySet()) {
            for (MirrorView m : e.getValue()) {
                boolean anyInSync = m.replicas().stream().anyMatch(r -> r.state() == ReplicaState.IN_SYNC);
                if (!anyInSync) {
                    status = Status.DOWN;
                } else if (m.degraded() && status == Status.UP) {
                    status = DEGRADED;
                }
                Map<String, Object> d = new LinkedHashMap<>();
                d.put("target", m.target());
                d.put("degraded", m.degraded());
                d.put("states", m.replicas().stream().map(r -> r.state().name()).toList());
                d.put(
                        "dirtyRegions",
                        m.replicas().stream()
                                .map(MirrorView.ReplicaView::dirtyRegions)
                                .toList());
                details.put("device " + e.getKey() + " mirror " + m.index(), d);
            }
        }
        return Health.status(status).withDetails(details).build();
    }
}

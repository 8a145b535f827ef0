package dev.reactorubd.management;

import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.MirrorReplaceException;
import dev.reactorubd.targets.compose.ReplicaState;
import dev.reactorubd.targets.spec.TargetSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import reactor.core.publisher.Mono;

/**
 * The mirrors of an opened target: finding them, showing them ({@link MirrorView}), reinstating and replacing a
 * replica.
 *
 * <h2>Which mirrors</h2>
 * {@link TargetSpec#open} tracks every mirror it assembles among {@link TargetSpec.Opened#owned()}, a mirror after
 * the parts it contains (the parts are opened one after the other, depth first). The mirrors of the spec, taken in
 * the same order (children before their parent), pair with them one to one: mirror K is the K-th {@code mirror(...)}
 * to close in the spec's text.
 *
 * <h2>Threading</h2>
 * Everything reads the mirrors' atomics and takes no lock but the mirror's own short one: safe on an event loop.
 */
final class Mirrors {
    private static final Logger log = LoggerFactory.getLogger(Mirrors.class);

    private Mirrors() {}

    /** A mirror of a target: its index, its spec and the backend. */
    record Found(int index, TargetSpec.Composite spec, MirrorBackend mirror) {}

    /** Every mirror of {@code opened}, in index order; empty when it has none (or is null). */
    static List<Found> find(TargetSpec.Opened opened) {
        if (opened == null) {
            return List.of();
        }
        List<MirrorBackend> backends = opened.owned().stream()
                .filter(MirrorBackend.class::isInstance)
                .map(MirrorBackend.class::cast)
                .toList();
        List<TargetSpec.Composite> specs = new ArrayList<>();
        collect(opened.spec(), specs);
        if (specs.size() != backends.size()) {
            // Not built by TargetSpec.open (cannot happen here): show the mirrors without their specs.
            specs = null;
        }
        List<Found> out = new ArrayList<>(backends.size());
        for (int i = 0; i < backends.size(); i++) {
            out.add(new Found(i, specs == null ? null : specs.get(i), backends.get(i)));
        }
        return out;
    }

    private static void collect(TargetSpec spec, List<TargetSpec.Composite> out) {
        if (spec instanceof TargetSpec.Composite c) {
            for (TargetSpec p : c.parts()) {
                collect(p, out);
            }
            if (c.kind().equals("mirror")) {
                out.add(c);
            }
        }
    }

    /**
     * The views of every mirror of {@code opened}.
     *
     * @param replaced the specs of replicas put in by a replace, keyed by {@link #slotKey}
     */
    static List<MirrorView> views(TargetSpec.Opened opened, Map<String, String> replaced) {
        return find(opened).stream().map(f -> view(f, replaced)).toList();
    }

    /** The key of replica {@code replica} of mirror {@code mirror} in a device's map of replaced replicas. */
    static String slotKey(int mirror, int replica) {
        return mirror + "/" + replica;
    }

    static MirrorView view(Found f, Map<String, String> replaced) {
        MirrorBackend m = f.mirror();
        long regions = (m.size() + m.regionBytes() - 1) / m.regionBytes();
        List<ReplicaState> states = m.states();
        List<MirrorView.ReplicaView> replicas = new ArrayList<>(states.size());
        for (int r = 0; r < states.size(); r++) {
            long dirty = m.dirtyRegions(r);
            Double percent = switch (states.get(r)) {
                case IN_SYNC -> 100.0;
                case RESYNCING ->
                    regions == 0 ? 100.0 : Math.floor(1000.0 * Math.max(0, regions - dirty) / regions) / 10;
                case FAILED -> null;
            };
            String target = replaced.get(slotKey(f.index(), r));
            if (target == null) {
                target = f.spec() != null
                        ? f.spec().parts().get(r).text()
                        : String.valueOf(m.replicas().get(r));
            }
            replicas.add(new MirrorView.ReplicaView(r, target, states.get(r), dirty, percent));
        }
        return new MirrorView(
                f.index(),
                f.spec() != null ? f.spec().text() : m.toString(),
                m.mirrorId() == null ? null : m.mirrorId().toString(),
                m.events(),
                m.isDegraded(),
                m.regionBytes(),
                regions,
                m.copiedRegions(),
                replicas);
    }

    /**
     * The mirror a request names: {@code mirror} (an index), or the only one when null.
     *
     * @throws ApiException 404 when the target has no such mirror, 400 when it has several and none is named
     */
    static Found select(int device, TargetSpec.Opened opened, Integer mirror) {
        List<Found> all = find(opened);
        String target = opened == null ? "?" : opened.spec().text();
        if (all.isEmpty()) {
            throw new ApiException(
                    HttpStatus.NOT_FOUND,
                    "No mirror",
                    "device " + device + " serves '" + target
                            + "', which has no mirror: replicas can be reinstated on a device whose target is or contains "
                            + "mirror(SPEC,SPEC...)");
        }
        if (mirror == null) {
            if (all.size() > 1) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST,
                        "Mirror needed",
                        "device " + device + " has "
                                + all.size() + " mirrors: add ?mirror=K, K from 0 to " + (all.size() - 1)
                                + " (GET /api/devices/" + device + " lists them)");
            }
            return all.get(0);
        }
        if (mirror < 0 || mirror >= all.size()) {
            throw new ApiException(
                    HttpStatus.NOT_FOUND,
                    "No such mirror",
                    "device " + device + " has " + all.size() + " mirror(s), numbered from 0: mirror " + mirror
                            + " is not one of them");
        }
        return all.get(mirror);
    }

    /**
     * Starts the reinstate of replica {@code replica} of {@code f} (see {@link MirrorBackend#reinstate}): it is
     * RESYNCING when this returns, and IN_SYNC once its resync has copied what it missed; the outcome is logged (INFO
     * when back in sync, WARN when the resync fails). Synchronized on the mirror, so that two requests cannot both
     * start one.
     *
     * @return the mirror's view after the start
     * @throws ApiException 404 for a replica index that is not one, 409 when the replica is not FAILED
     */
    static MirrorView reinstate(int device, Found f, int replica, Map<String, String> replaced) {
        MirrorBackend m = f.mirror();
        checkReplica(device, f, replica);
        synchronized (m) {
            ReplicaState st = m.state(replica);
            switch (st) {
                case IN_SYNC ->
                    throw new ApiException(
                            HttpStatus.CONFLICT,
                            "Replica not failed",
                            "replica " + replica
                                    + " of mirror " + f.index() + " of device " + device
                                    + " is IN_SYNC: only a FAILED replica "
                                    + "can be reinstated; there is nothing to do");
                case RESYNCING ->
                    throw new ApiException(
                            HttpStatus.CONFLICT,
                            "Replica not failed",
                            "replica "
                                    + replica + " of mirror " + f.index() + " of device " + device
                                    + " is RESYNCING already ("
                                    + m.dirtyRegions(replica) + " dirty regions left): watch GET /api/devices/" + device
                                    + " until it is IN_SYNC");
                case FAILED -> {}
            }
            log.info(
                    "device {} mirror {} replica {}: reinstating ({} dirty regions)",
                    device,
                    f.index(),
                    replica,
                    m.dirtyRegions(replica));
            m.reinstate(replica)
                    .subscribe(
                            v -> {},
                            e -> log.warn(
                                    "device {} mirror {} replica {}: reinstate failed: {}",
                                    device,
                                    f.index(),
                                    replica,
                                    e.toString()),
                            () -> log.info(
                                    "device {} mirror {} replica {}: reinstated, IN_SYNC", device, f.index(), replica));
        }
        return view(f, replaced);
    }

    /** @throws ApiException 404 for a replica index that is not one of {@code f}'s */
    static void checkReplica(int device, Found f, int replica) {
        int count = f.mirror().states().size();
        if (replica < 0 || replica >= count) {
            throw new ApiException(
                    HttpStatus.NOT_FOUND,
                    "No such replica",
                    "mirror " + f.index() + " of device "
                            + device + " has " + count + " replicas, numbered from 0: replica " + replica
                            + " is not one of them");
        }
    }

    /**
     * Puts {@code replacement} in slot {@code replica} of {@code f} ({@link MirrorBackend#replace}); its full sync then
     * runs in the background and its outcome is logged.
     *
     * @return a Mono of the mirror's view once the replacement is in place (RESYNCING); an {@link ApiException} 400
     *         when the replacement cannot take the slot, 409 when the mirror cannot give it up now
     */
    static Mono<MirrorView> replace(
            int device, Found f, int replica, TargetSpec.Opened replacement, Map<String, String> replaced) {
        MirrorBackend m = f.mirror();
        String text = replacement.spec().text();
        log.info(
                "device {} mirror {} replica {}: replacing {} with {}",
                device,
                f.index(),
                replica,
                view(f, replaced).replicas().get(replica).target(),
                text);
        return m.replace(replica, replacement.backend())
                .onErrorMap(
                        MirrorReplaceException.class,
                        e -> e.reason() == MirrorReplaceException.Reason.UNSUITABLE
                                ? new ApiException(HttpStatus.BAD_REQUEST, "Replacement refused", e.getMessage(), e)
                                : new ApiException(
                                        HttpStatus.CONFLICT, "Replica cannot be replaced now", e.getMessage(), e))
                .then(Mono.fromSupplier(() -> {
                    replaced.put(slotKey(f.index(), replica), text);
                    m.reinstate(replica)
                            .subscribe(
                                    v -> {},
                                    e -> log.warn(
                                            "device {} mirror {} replica {}: the full sync of {} failed: {}",
                                            device,
                                            f.index(),
                                            replica,
                                            text,
                                            e.toString()),
                                    () -> log.info(
                                            "device {} mirror {} replica {}: {} is IN_SYNC",
                                            device,
                                            f.index(),
                                            replica,
                                            text));
                    return view(f, replaced);
                }));
    }
}

package dev.reactorubd.management;

import dev.reactorubd.UbdException;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.spring.boot.TargetPolicyProperties;
import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetPolicyException;
import dev.reactorubd.targets.spec.TargetSpec;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.IoEventLoopGroup;
import jakarta.annotation.PreDestroy;
import java.time.Duration;
import java.time.Instant;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.http.HttpStatus;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * The devices this service serves: creates them from target specs, lists, inspects and deletes them.
 *
 * <h2>The server</h2>
 * One {@link UbdServer}, opened on first use (on a bounded-elastic thread: opening {@code /dev/ublk-control} is a
 * system call) with the application's Micrometer registry, and on the HTTP server's io_uring event loops when
 * {@code ubd.share-event-loops=true} (else its own). Where {@code ublk_drv} is missing, every create answers 503
 * and the next one tries again.
 *
 * <h2>The target policy</h2>
 * Every spec is parsed and opened under one {@link TargetPolicy} ({@code ubd.targets.*},
 * {@link TargetPolicyProperties}): closed by default, so that a caller reaches only the files, devices and NBD servers
 * it was given. A refusal is a 403 problem whose {@code rule} property names the {@link TargetPolicyException.Rule};
 * it never says whether a file outside the allowed directories exists. A file is created only when the request asks
 * with {@code "create"} and the policy allows it; {@code "size"} alone never creates or grows one.
 *
 * <h2>Errors</h2>
 * Operations signal {@link ApiException}s: 400 for a bad spec or a target that cannot be opened, 403 for a spec the
 * policy refuses, 404 for an unknown
 * device, 409 for a device id in use or a device being created or deleted, 503 without the driver. Every wait is
 * bounded ({@link #WAIT}).
 *
 * <h2>Threading</h2>
 * Every method returns at once; state is in concurrent maps, safe from any thread.
 */
@Service
public class DeviceManager {
    private static final Logger log = LoggerFactory.getLogger(DeviceManager.class);
    /** Bound on opening a target, serving a device, and closing one. */
    static final Duration WAIT = Duration.ofSeconds(60);

    /** A device of this service: its spec, its target and, once live, the device. */
    static final class Managed {
        final TargetSpec spec;
        final Instant created = Instant.now();
        volatile String state = "CREATING";
        volatile UbdDevice device;
        volatile TargetSpec.Opened target;
        volatile long capacity;
        /** Specs of replicas put in by a replace, keyed by {@link Mirrors#slotKey}. */
        final Map<String, String> replaced = new ConcurrentHashMap<>();
        /** Targets opened for replaces: closed (again: their mirror closes them first) with the device. */
        final List<TargetSpec.Opened> replacements = new CopyOnWriteArrayList<>();

        Managed(TargetSpec spec) {
            this.spec = spec;
        }
    }

    private final MeterRegistry registry;
    private final IoEventLoopGroup sharedLoops;
    private final TargetPolicy policy;
    private final AtomicReference<UbdServer> server = new AtomicReference<>();
    private final Map<Integer, Managed> devices = new ConcurrentHashMap<>();
    /** Creations whose id is not known yet, keyed by a negative placeholder. */
    private final AtomicInteger placeholders = new AtomicInteger();

    public DeviceManager(MeterRegistry registry, ObjectProvider<IoEventLoopGroup> sharedLoops, TargetPolicy policy) {
        this.registry = registry;
        this.sharedLoops = sharedLoops.getIfAvailable();
        this.policy = policy;
    }

    /** The policy every spec is opened under. */
    public TargetPolicy policy() {
        return policy;
    }

    /** The registry the queues record into. */
    public MeterRegistry registry() {
        return registry;
    }

    /** Whether device queues run on the HTTP server's event loops. */
    public boolean sharesEventLoops() {
        return sharedLoops != null;
    }

    private Mono<UbdServer> server() {
        UbdServer s = server.get();
        if (s != null) {
            return Mono.just(s);
        }
        return Mono.fromCallable(() -> {
                    synchronized (server) {
                        UbdServer existing = server.get();
                        if (existing != null) {
                            return existing;
                        }
                        UbdServer.Builder b = UbdServer.builder().meterRegistry(registry);
                        if (sharedLoops != null) {
                            b.eventLoops(sharedLoops);
                        }
                        UbdServer created = b.build();
                        server.set(created);
                        log.info(
                                "ublk server open{}",
                                sharedLoops != null ? " on the HTTP server's io_uring loops" : "");
                        return created;
                    }
                })
                .subscribeOn(Schedulers.boundedElastic());
    }

    /** Creates and starts a device; signals its view once live. */
    public Mono<DeviceView> create(CreateDeviceRequest request) {
        return Mono.defer(() -> {
            if (request == null || request.target() == null || request.target().isBlank()) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST,
                        "Bad target spec",
                        "send a JSON body with a "
                                + "\"target\" spec, e.g. {\"target\": \"memory:64M\", \"queues\": 2}; specs: "
                                + TargetSpec.SYNTAX);
            }
            TargetSpec spec = parse(request.target(), policy);
            long size = request.size() == null || request.size().isBlank() ? 0 : parseSize(request.size());
            long create = request.create() == null || request.create().isBlank() ? 0 : parseSize(request.create());
            boolean grow = Boolean.TRUE.equals(request.grow());
            if (grow && size <= 0) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST,
                        "Size needed",
                        "\"grow\": true extends shorter files " + "to \"size\": send one, e.g. \"size\": \"64M\"");
            }
            TargetSpec.OpenOptions options =
                    TargetSpec.OpenOptions.defaults().create(create).grow(grow ? size : 0);
            int queues = request.queues() == null ? 1 : request.queues();
            int depth = request.depth() == null ? 128 : request.depth();
            if (queues < 1 || queues > 64) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST, "Bad queue count", "queues must be from 1 to 64; was " + queues);
            }
            if (depth < 1 || depth > 4096) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST, "Bad depth", "depth must be from 1 to 4096; was " + depth);
            }
            Integer wantedId = request.id();
            int key = wantedId != null ? wantedId : -1 - placeholders.getAndIncrement() % 1_000_000;
            Managed m = new Managed(spec);
            if (devices.putIfAbsent(key, m) != null) {
                throw new ApiException(
                        HttpStatus.CONFLICT,
                        "Device busy",
                        "device " + key + " already exists " + "here: delete it first (DELETE /api/devices/" + key
                                + ") or leave \"id\" out");
            }
            long wantedSize = size;
            // The target first, so that what the policy refuses is refused whether or not the driver is there.
            // TargetSpec.open opens files off the subscriber's thread; subscribeOn keeps all of it off the HTTP loop.
            return open(spec, options)
                    .flatMap(opened -> {
                        m.target = opened;
                        long capacity = wantedSize > 0 ? wantedSize : opened.size();
                        if (capacity <= 0) {
                            return Mono.error(new ApiException(
                                    HttpStatus.BAD_REQUEST,
                                    "Size needed",
                                    "target '" + spec.text() + "' has no size of its own: send \"size\", "
                                            + "e.g. \"64M\""));
                        }
                        if (opened.backend().size() > 0
                                && capacity > opened.backend().size()) {
                            return Mono.error(new ApiException(
                                    HttpStatus.BAD_REQUEST,
                                    "Size too large",
                                    "size " + capacity + " is larger than target '" + spec.text() + "' ("
                                            + opened.backend().size() + " bytes): send a smaller \"size\" "
                                            + "or leave it out"));
                        }
                        DeviceSpec.Builder ds = DeviceSpec.builder()
                                .capacityBytes(capacity)
                                .queues(queues)
                                .depth(depth)
                                .readOnly(isReadOnly(spec));
                        if (wantedId != null) {
                            ds.deviceId(wantedId);
                        }
                        m.capacity = capacity;
                        return server().flatMap(srv -> srv.serve(ds.build(), opened.backend()));
                    })
                    .timeout(
                            WAIT,
                            Mono.error(() -> new ApiException(
                                    HttpStatus.GATEWAY_TIMEOUT,
                                    "Timed out",
                                    "the device was not live within " + WAIT + "; try again")))
                    .map(dev -> {
                        m.device = dev;
                        m.state = "LIVE";
                        if (key != dev.id()) {
                            devices.remove(key);
                            devices.put(dev.id(), m);
                        }
                        return view(m);
                    })
                    .onErrorMap(DeviceManager::toApi)
                    .doOnError(e -> {
                        devices.remove(key, m);
                        TargetSpec.Opened t = m.target;
                        if (t != null) {
                            t.close().subscribe(null, x -> {});
                        }
                    });
        });
    }

    private static boolean isReadOnly(TargetSpec spec) {
        return (spec instanceof TargetSpec.File f && f.readOnly())
                || (spec instanceof TargetSpec.Rbd r && r.image().readOnly());
    }

    /**
     * Opens {@code spec} under the service's policy, off the HTTP loop (TargetSpec.open opens files off the
     * subscriber's thread; subscribeOn keeps all of it off the loop); refusals are 403 naming the rule, other failures
     * 400.
     */
    private Mono<TargetSpec.Opened> open(TargetSpec spec, TargetSpec.OpenOptions options) {
        return Mono.defer(() -> TargetSpec.open(spec, policy, options))
                .subscribeOn(Schedulers.boundedElastic())
                .onErrorMap(
                        e -> !(e instanceof ApiException),
                        e -> e instanceof TargetPolicyException p
                                ? refused(p)
                                : new ApiException(
                                        HttpStatus.BAD_REQUEST,
                                        "Target cannot be opened",
                                        "target '" + spec.text() + "' cannot be opened: " + e.getMessage(),
                                        e));
    }

    private static TargetSpec parse(String text, TargetPolicy policy) {
        try {
            return TargetSpec.parse(text, policy);
        } catch (TargetPolicyException e) {
            throw refused(e);
        } catch (TargetSpec.InvalidTargetSpecException e) {
            throw new ApiException(HttpStatus.BAD_REQUEST, "Bad target spec", e.getMessage(), e);
        }
    }

    private static long parseSize(String text) {
        try {
            return TargetSpec.parseSize(text);
        } catch (TargetSpec.InvalidTargetSpecException e) {
            throw new ApiException(HttpStatus.BAD_REQUEST, "Bad size", e.getMessage(), e);
        }
    }

    /** A policy refusal: 403, naming the rule (the message never tells what is outside the allowed directories). */
    static ApiException refused(TargetPolicyException e) {
        return new ApiException(HttpStatus.FORBIDDEN, "Refused by the target policy", e.getMessage(), e)
                .withRule(e.rule().name());
    }

    /** Maps the library's typed errors to API errors. */
    static Throwable toApi(Throwable e) {
        if (e instanceof ApiException) {
            return e;
        }
        if (e instanceof UbdException u) {
            switch (u.kind()) {
                case MODULE_NOT_LOADED:
                    return new ApiException(
                            HttpStatus.SERVICE_UNAVAILABLE,
                            "ublk driver missing",
                            e.getMessage()
                                    + " (load it on the host with 'modprobe ublk_drv', then send the request again)",
                            e);
                case BUSY:
                    return new ApiException(HttpStatus.CONFLICT, "Device busy", e.getMessage(), e);
                case INVALID_ARGUMENT:
                    return new ApiException(HttpStatus.BAD_REQUEST, "Bad device spec", e.getMessage(), e);
                case PERMISSION:
                    return new ApiException(
                            HttpStatus.SERVICE_UNAVAILABLE,
                            "No permission",
                            e.getMessage() + " (run the service as root or with CAP_SYS_ADMIN)",
                            e);
                default:
                    break;
            }
        }
        return new ApiException(HttpStatus.INTERNAL_SERVER_ERROR, "Device error", String.valueOf(e.getMessage()), e);
    }

    /**
     * Whether every live device's queues run on the shared event loops (false without them): each queue's loop is
     * one of the shared group's executors.
     */
    public boolean queuesOnSharedLoops() {
        if (sharedLoops == null) {
            return false;
        }
        Set<Object> loops = new HashSet<>();
        sharedLoops.iterator().forEachRemaining(loops::add);
        return liveDevices().stream().flatMap(d -> d.queues().stream()).allMatch(q -> loops.contains(q.loop()));
    }

    /** Every device, by id. */
    public List<DeviceView> list() {
        return devices.values().stream()
                .filter(m -> m.device != null)
                .map(DeviceManager::view)
                .sorted(Comparator.comparingInt(DeviceView::id))
                .toList();
    }

    /** One device; 404 when this service does not serve it. */
    public DeviceView get(int id) {
        return view(live(id));
    }

    /** Live devices (for the statistics). */
    List<UbdDevice> liveDevices() {
        return devices.values().stream()
                .map(m -> m.device)
                .filter(d -> d != null && !d.isDisposed())
                .toList();
    }

    private Managed live(int id) {
        Managed m = devices.get(id);
        if (m == null || m.device == null) {
            throw new ApiException(
                    HttpStatus.NOT_FOUND,
                    "No such device",
                    "this service serves no device " + id + ": GET /api/devices lists the ones it does");
        }
        return m;
    }

    /** Stops and deletes a device, then closes its target; 404 unknown, 409 when it is being deleted already. */
    public Mono<Void> delete(int id) {
        return Mono.defer(() -> {
            Managed m = live(id);
            synchronized (m) {
                if (!"LIVE".equals(m.state)) {
                    throw new ApiException(
                            HttpStatus.CONFLICT,
                            "Device busy",
                            "device " + id + " is " + m.state + ": wait for it to finish");
                }
                m.state = "DELETING";
            }
            return m.device
                    .close()
                    .timeout(WAIT)
                    .then(Mono.defer(() -> m.target == null ? Mono.<Void>empty() : m.target.close()))
                    .then(Flux.fromIterable(m.replacements)
                            .concatMap(TargetSpec.Opened::close)
                            .then())
                    .doOnSuccess(v -> devices.remove(id, m))
                    .onErrorMap(e -> {
                        m.state = "LIVE";
                        return toApi(e);
                    });
        });
    }

    static DeviceView view(Managed m) {
        UbdDevice d = m.device;
        List<DeviceView.QueueView> queues = d == null
                ? List.of()
                : d.queues().stream().map(DeviceManager::queueView).toList();
        return new DeviceView(
                d == null ? -1 : d.id(),
                m.state,
                d == null ? null : d.blockDevicePath(),
                m.spec.text(),
                m.capacity,
                queues.size(),
                d == null ? 0 : d.info().depth(),
                m.created,
                queues,
                Mirrors.views(m.target, m.replaced));
    }

    /**
     * Starts the reinstate of a FAILED replica of a live device's mirror ({@link Mirrors#reinstate}); returns the
     * mirror's view, the replica RESYNCING in it. Does not wait for the resync: {@link #get} shows its progress.
     *
     * @param id      the device
     * @param mirror  which mirror of its target (null: the only one)
     * @param replica the replica's slot
     * @throws ApiException 404 for an unknown device, mirror or replica; 400 when the target has several mirrors and
     *                      none is named; 409 when the device is not LIVE or the replica is not FAILED
     */
    public MirrorView reinstate(int id, Integer mirror, int replica) {
        Managed m = live(id);
        synchronized (m) {
            if (!"LIVE".equals(m.state)) {
                throw new ApiException(
                        HttpStatus.CONFLICT,
                        "Device busy",
                        "device " + id + " is " + m.state + ": its mirror cannot be changed now");
            }
            return Mirrors.reinstate(id, Mirrors.select(id, m.target, mirror), replica, m.replaced);
        }
    }

    /**
     * Replaces a replica of a live device's mirror with the target {@code spec} ({@link Mirrors#replace}): opens the
     * spec (off the event loop), puts it in the slot, and answers once it is in place and RESYNCING; {@link #get} shows
     * the full sync's progress. A refused replace closes what it opened.
     *
     * @param id      the device
     * @param mirror  which mirror of its target (null: the only one)
     * @param replica the replica's slot
     * @param spec    the replacement's target spec, e.g. {@code file:/srv/disks/new.img}
     * @param create  create its missing file with this size (e.g. {@code 64M}; null: none), where the policy allows
     * @return a Mono of the mirror's view; {@link ApiException} 404 for an unknown device, mirror or replica, 400 for a
     *         bad spec or an unsuitable replacement, 409 when the device is not LIVE or the slot cannot be given up now
     */
    public Mono<MirrorView> replace(int id, Integer mirror, int replica, String spec, String create) {
        return Mono.defer(() -> {
            Managed m = live(id);
            Mirrors.Found found;
            synchronized (m) {
                if (!"LIVE".equals(m.state)) {
                    throw new ApiException(
                            HttpStatus.CONFLICT,
                            "Device busy",
                            "device " + id + " is " + m.state + ": its mirror cannot be changed now");
                }
                found = Mirrors.select(id, m.target, mirror);
                Mirrors.checkReplica(id, found, replica);
            }
            if (spec == null || spec.isBlank()) {
                throw new ApiException(
                        HttpStatus.BAD_REQUEST,
                        "Target needed",
                        "send {\"target\": \"SPEC\"}, "
                                + "the replacement replica, e.g. {\"target\": \"file:/srv/disks/new.img\"}; "
                                + TargetSpec.SYNTAX);
            }
            TargetSpec parsed = parse(spec, policy);
            long createBytes = create == null || create.isBlank() ? 0 : parseSize(create);
            TargetSpec.OpenOptions options = TargetSpec.OpenOptions.defaults().create(createBytes);
            // Under the service's policy, like a device's target; opening a file is a system call: off the HTTP loop.
            return open(parsed, options)
                    .flatMap(opened -> Mirrors.replace(id, found, replica, opened, m.replaced)
                            .doOnSuccess(v -> m.replacements.add(opened))
                            .onErrorResume(e -> opened.close().then(Mono.error(e))));
        });
    }

    /** The mirrors of every live device that has any, by device id (for the health endpoint). */
    SortedMap<Integer, List<MirrorView>> mirrors() {
        SortedMap<Integer, List<MirrorView>> out = new TreeMap<>();
        for (Managed m : devices.values()) {
            UbdDevice d = m.device;
            if (d != null && "LIVE".equals(m.state)) {
                List<MirrorView> views = Mirrors.views(m.target, m.replaced);
                if (!views.isEmpty()) {
                    out.put(d.id(), views);
                }
            }
        }
        return out;
    }

    private static DeviceView.QueueView queueView(UbdQueue q) {
        return new DeviceView.QueueView(
                q.id(), q.completedCount(), q.failedCount(), q.inFlightCount(), q.waitingForDemand());
    }

    /** Closes every device and the server (bounded), at shutdown. */
    @PreDestroy
    public void shutdown() {
        Flux.fromIterable(devices.keySet())
                .flatMap(id -> delete(id).onErrorResume(e -> Mono.empty()))
                .then()
                .block(WAIT);
        UbdServer s = server.getAndSet(null);
        if (s != null) {
            s.close();
        }
        if (sharedLoops != null) {
            sharedLoops.shutdownGracefully(0, 2, TimeUnit.SECONDS);
        }
    }
}

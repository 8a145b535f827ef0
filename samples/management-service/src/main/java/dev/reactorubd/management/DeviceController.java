package dev.reactorubd.management;

import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The JSON API under {@code /api}:
 * <ul>
 *   <li>{@code POST /api/devices} with a {@link CreateDeviceRequest}: 201 and the {@link DeviceView}, Location
 *       {@code /api/devices/N};</li>
 *   <li>{@code GET /api/server}: whether queues share the HTTP server's event loops;</li>
 *   <li>{@code GET /api/devices}: every device; {@code GET /api/devices/N}: one (404 if unknown);</li>
 *   <li>{@code DELETE /api/devices/N}: 204 once stopped and deleted;</li>
 *   <li>{@code POST /api/devices/N/mirror/replicas/I/reinstate[?mirror=K]}: 202 and the {@link MirrorView} once the
 *       reinstate of FAILED replica I has started (its resync then runs in the background, shown by
 *       {@code GET /api/devices/N}); 409 when the replica is not FAILED, 404 for no such mirror or replica;
 *       {@code mirror} is needed only for a target with several mirrors;</li>
 *   <li>{@code POST /api/devices/N/mirror/replicas/I/replace[?mirror=K]} with {@code {"target": "SPEC"}}: 202 and
 *       the {@link MirrorView} once SPEC is open and in slot I, RESYNCING (a full copy, in the background); the old
 *       replica is closed once its requests in flight have ended. 400 for a bad or unsuitable replacement (too small,
 *       another mirror's replica, data without a superblock), 409 when no other replica is in sync;</li>
 *   <li>{@code GET /api/stats} ({@code text/event-stream}): a {@link StatsFrame} of every device each second;
 *       {@code GET /api/devices/N/stats}: that device's {@link DeviceStats} each second, ending when it is deleted.</li>
 * </ul>
 * Errors are RFC 9457 problem bodies ({@link ProblemHandler}). Nothing here blocks: every answer is a Mono or Flux.
 */
@RestController
@RequestMapping("/api")
public class DeviceController {
    private final DeviceManager devices;
    private final StatsService stats;

    public DeviceController(DeviceManager devices, StatsService stats) {
        this.devices = devices;
        this.stats = stats;
    }

    @PostMapping(path = "/devices", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<DeviceView>> create(@RequestBody(required = false) Mono<CreateDeviceRequest> body) {
        return body.defaultIfEmpty(new CreateDeviceRequest(null, null, null, null, null, null, null))
                .flatMap(devices::create)
                .map(v -> ResponseEntity.created(URI.create("/api/devices/" + v.id()))
                        .body(v));
    }

    /**
     * How the service runs: whether device queues share the HTTP server's event loops, the thread this request was
     * handled on, and whether every live device's queues are on the shared loops.
     */
    public record ServerView(boolean sharedEventLoops, String requestThread, boolean queuesOnSharedLoops) {}

    @GetMapping("/server")
    public ServerView server() {
        return new ServerView(
                devices.sharesEventLoops(), Thread.currentThread().getName(), devices.queuesOnSharedLoops());
    }

    @GetMapping("/devices")
    public List<DeviceView> list() {
        return devices.list();
    }

    @GetMapping("/devices/{id}")
    public DeviceView get(@PathVariable("id") int id) {
        return devices.get(id);
    }

    @DeleteMapping("/devices/{id}")
    public Mono<ResponseEntity<Void>> delete(@PathVariable("id") int id) {
        return devices.delete(id)
                .then(Mono.fromSupplier(() -> ResponseEntity.noContent().<Void>build()));
    }

    @PostMapping("/devices/{id}/mirror/replicas/{replica}/reinstate")
    public ResponseEntity<MirrorView> reinstate(
            @PathVariable("id") int id,
            @PathVariable("replica") int replica,
            @RequestParam(name = "mirror", required = false) Integer mirror) {
        return ResponseEntity.accepted()
                .location(URI.create("/api/devices/" + id))
                .body(devices.reinstate(id, mirror, replica));
    }

    /**
     * The body of a replace.
     *
     * @param target the replacement replica's target spec (required)
     * @param create create its missing file with this size, e.g. {@code 64M} (optional; where the policy allows)
     */
    public record ReplaceRequest(String target, String create) {}

    @PostMapping("/devices/{id}/mirror/replicas/{replica}/replace")
    public Mono<ResponseEntity<MirrorView>> replace(
            @PathVariable("id") int id,
            @PathVariable("replica") int replica,
            @RequestParam(name = "mirror", required = false) Integer mirror,
            @RequestBody ReplaceRequest request) {
        return devices.replace(
                        id,
                        mirror,
                        replica,
                        request == null ? null : request.target(),
                        request == null ? null : request.create())
                .map(v -> ResponseEntity.accepted()
                        .location(URI.create("/api/devices/" + id))
                        .body(v));
    }

    @GetMapping(path = "/stats", produces = MediaType.TEXT_EVENT_STREAM_VALUE)
    public Flux<ServerSentEvent<StatsFrame>> allStats() {
        return stats.frames().map(f -> ServerSentEvent.builder(f).event("stats").build());
    }

    @GetMapping(path = "/devices/{id}/stats", produces = MediaType.TEXT_EVENT_STREAM_VALUE)
    public Flux<ServerSentEvent<DeviceStats>> deviceStats(@PathVariable("id") int id) {
        devices.get(id); // 404 before the stream starts
        return stats.frames()
                .map(f -> f.devices().stream().filter(d -> d.id() == id).findFirst())
                .takeWhile(Optional::isPresent)
                .map(o -> ServerSentEvent.builder(o.get()).event("stats").build())
                .timeout(Duration.ofSeconds(30));
    }
}

package dev.reactorubd.samples;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.ComposableBackend;
import dev.reactorubd.targets.compose.MirrorOptions;
import dev.reactorubd.targets.nbd.NbdOptions;
import dev.reactorubd.targets.rbd.RbdBackend;
import dev.reactorubd.targets.rbd.RbdImageSpec;
import dev.reactorubd.targets.rbd.RbdOptions;
import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetSpec;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Option;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The options that say what serves a device: a target, its settings, parts for compositions, and decorators. Shared by
 * {@code serve} and {@code recover}. {@link #open()} builds the backend.
 *
 * <p>Parts of a composition ({@code --replica}, {@code --part}) are written as target specs: {@code null:SIZE},
 * {@code memory:SIZE}, {@code file:PATH} (with {@code ?direct} and/or {@code ?ro}, e.g. {@code file:/a.img?direct}),
 * {@code nbd://host[:port]/export}, {@code nbd+unix:///export?socket=PATH} or
 * {@code rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH]}.
 *
 * <p>Every target is opened under {@link TargetPolicy#permissive()} (root's own tool: any path, any NBD server), with
 * one exception to what it allowed before: a file is created only with {@code --create SIZE} and extended only with
 * {@code --grow}; {@code --size} alone is the device's size and changes no file.
 */
final class TargetOptions {
    enum Target {
        NULL,
        MEMORY,
        FILE,
        NBD,
        RBD,
        MIRROR,
        STRIPE,
        CONCAT
    }

    @Option(
            names = "--target",
            converter = TargetConverter.class,
            completionCandidates = TargetNames.class,
            description = "null, memory, file, nbd, rbd, mirror, stripe or concat")
    Target target;

    @Option(
            names = "--size",
            converter = SizeConverter.class,
            description = "capacity, e.g. 64M: required for null "
                    + "and memory; for the others the device's size, within the target's (it never creates or extends a file: "
                    + "see --create and --grow)")
    long size;

    @Option(
            names = "--create",
            paramLabel = "SIZE",
            converter = SizeConverter.class,
            description = "file targets "
                    + "and file parts: create each missing file with SIZE bytes (sparse, mode 0600, never through a symbolic "
                    + "link); an existing file is used as it is. Not on recover")
    long create;

    @Option(
            names = "--grow",
            description =
                    "file targets and file parts: extend each file shorter than --size to " + "--size bytes (sparse)")
    boolean grow;

    @Option(names = "--file", description = "file: the file or block device that stores the data")
    Path file;

    @Option(names = "--direct", description = "file: O_DIRECT, bypassing the page cache")
    boolean direct;

    @Option(names = "--read-only", description = "serve a read-only device (file: opened read-only)")
    boolean readOnly;

    @Option(names = "--uri", description = "nbd: nbd://host[:port]/export or nbd+unix:///export?socket=PATH")
    String uri;

    @Option(names = "--image", paramLabel = "POOL/IMAGE", description = "rbd: the Ceph RBD image to serve")
    String image;

    @Option(names = "--snapshot", description = "rbd: serve this snapshot of the image, read-only")
    String snapshot;

    @Option(
            names = "--ceph-conf",
            paramLabel = "PATH",
            description = "rbd: the cluster's ceph.conf (default: librados' search, /etc/ceph/ceph.conf)")
    Path cephConf;

    @Option(
            names = "--ceph-id",
            paramLabel = "NAME",
            description = "rbd: the client id, without client. (default admin)")
    String cephId;

    @Option(
            names = "--ceph-keyring",
            paramLabel = "PATH",
            description = "rbd: the client's keyring (default: the configuration's)")
    Path cephKeyring;

    @Option(
            names = "--osd-timeout",
            defaultValue = "20s",
            converter = DurationConverter.class,
            description = "rbd: librados' bound on one OSD operation, whole seconds; 0s waits for the OSD forever "
                    + "(default ${DEFAULT-VALUE})")
    Duration osdTimeout;

    @Option(names = "--replica", description = "mirror: a replica, as a target spec (repeat it)")
    List<String> replicas = new ArrayList<>();

    @Option(
            names = "--assume-current",
            paramLabel = "N",
            defaultValue = "-1",
            description = "mirror: when no replica "
                    + "is known current (every one stale), replica N's data wins and the others get a full copy of it; refused "
                    + "while another replica is current")
    int assumeCurrent;

    @Option(names = "--part", description = "stripe, concat: a part, as a target spec (repeat it)")
    List<String> parts = new ArrayList<>();

    @Option(
            names = "--chunk",
            defaultValue = "64K",
            converter = SizeConverter.class,
            description = "stripe: chunk size (default ${DEFAULT-VALUE})")
    long chunk;

    @Option(
            names = "--reconnects",
            defaultValue = "5",
            description = "nbd: reconnect attempts after a lost "
                    + "connection before requests fail with EIO; 0 fails them at once (default ${DEFAULT-VALUE})")
    int reconnects;

    @Option(
            names = "--request-timeout",
            defaultValue = "30s",
            converter = DurationConverter.class,
            description = "nbd: bound on each request, from submission to reply (default ${DEFAULT-VALUE})")
    Duration requestTimeout;

    @Option(
            names = "--cache",
            converter = SizeConverter.class,
            description = "a write-through read cache of this " + "size in front of the target")
    long cache;

    @Option(
            names = "--timeout",
            converter = DurationConverter.class,
            description = "fail any request that takes " + "longer (e.g. 5s, 500ms)")
    Duration timeout;

    @Option(names = "--retry", description = "retry a failed request this many times (not EINVAL, EROFS, ENOSPC...)")
    int retry;

    @Option(names = "--rate-iops", description = "at most this many requests per second")
    long rateIops;

    @Option(
            names = "--rate-bytes",
            converter = SizeConverter.class,
            description = "at most this many bytes per " + "second, e.g. 100M")
    long rateBytes;

    /** What was opened, so that it can be closed after the device. */
    private final List<BlockBackend> opened = new ArrayList<>();

    /** Whether the device is read-only: asked with --read-only, or a snapshot served. */
    boolean readOnlyDevice() {
        return readOnly || (target == Target.RBD && (snapshot != null || (image != null && image.contains("@"))));
    }

    /**
     * The target's new sizes, when it can change size while served (an RBD image resized in its cluster) and the device
     * follows it (no --size of its own); empty otherwise.
     */
    Flux<Long> sizeChanges() {
        if (target != Target.RBD || size > 0) {
            return Flux.empty();
        }
        return Flux.fromIterable(opened)
                .filter(RbdBackend.class::isInstance)
                .flatMap(b -> ((RbdBackend) b).sizeChanges());
    }

    /** A short description of the target, for messages. */
    String describe() {
        return target.name().toLowerCase(Locale.ROOT)
                + switch (target) {
                    case FILE -> " " + file + (direct ? " (O_DIRECT)" : "");
                    case NBD -> " " + uri;
                    case RBD -> " " + image + (snapshot != null ? "@" + snapshot : "");
                    case MIRROR -> " of " + replicas;
                    case STRIPE -> " of " + parts + " in " + chunk + "-byte chunks";
                    case CONCAT -> " of " + parts;
                    default -> "";
                };
    }

    /**
     * Builds the backend, decorated as asked; the caller closes it with {@link #closeAll()} after the device. An error
     * opening it (other than a usage error) is wrapped in a {@link TargetUnavailable}.
     */
    Mono<BlockBackend> open() {
        // Deferred, so that an option refused while the target is put together is an error signal like the others.
        return Mono.defer(this::openTarget)
                .map(this::decorate)
                // An argument a target or decorator refused is the command line's fault: say so, without the type.
                .onErrorMap(IllegalArgumentException.class, e -> new UbdCommand.UsageError(e.getMessage()))
                .onErrorMap(e -> !(e instanceof UbdCommand.UsageError), TargetUnavailable::new);
    }

    /** The target as given cannot be opened (a missing file, an unreachable NBD server): the cause says why. */
    static final class TargetUnavailable extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TargetUnavailable(Throwable cause) {
            super(cause.getMessage(), cause);
        }
    }

    /** The target names, for shell completion of {@code --target}. */
    static final class TargetNames implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return Arrays.stream(Target.values())
                    .map(t -> t.name().toLowerCase(Locale.ROOT))
                    .iterator();
        }
    }

    /**
     * The decorators asked for, innermost first: a timeout per attempt, retries of failed (or timed-out) attempts, the
     * cache in front of both, and the rate limit outermost, so that it counts what the device asks.
     */
    private BlockBackend decorate(BlockBackend b) {
        if (cache <= 0 && timeout == null && retry <= 0 && rateIops <= 0 && rateBytes <= 0) {
            return b;
        }
        ComposableBackend c = Backends.from(b);
        if (timeout != null) {
            c = c.timeout(timeout);
        }
        if (retry > 0) {
            // Tries in all: the first and the retries (--retry 2147483647 is as many as an int holds).
            c = c.retry((int) Math.min(retry + 1L, Integer.MAX_VALUE), Duration.ofMillis(100));
        }
        if (cache > 0) {
            c = c.cache(cache);
        }
        if (rateIops > 0 || rateBytes > 0) {
            c = c.limitRate(rateIops, rateBytes);
        }
        return c;
    }

    private Mono<BlockBackend> openTarget() {
        if (target == null) {
            return Mono.error(usage("give --target NAME: null, memory, file, nbd, rbd, mirror, stripe or concat"));
        }
        if (grow && size <= 0) {
            return Mono.error(
                    usage("--grow extends a shorter file to --size: give --size too, e.g. --size 10G --grow"));
        }
        return switch (target) {
            case NULL, MEMORY -> {
                if (size <= 0) {
                    yield Mono.error(usage("--target " + describe() + " needs --size, e.g. --size 64M"));
                }
                yield open(new TargetSpec.Sized(target.name().toLowerCase(Locale.ROOT), size));
            }
            case FILE -> {
                if (file == null) {
                    yield Mono.error(usage("--target file needs --file PATH"));
                }
                yield open(new TargetSpec.File(file, direct, readOnly));
            }
            case NBD -> {
                if (uri == null) {
                    yield Mono.error(usage("--target nbd needs --uri, e.g. --uri nbd://127.0.0.1:10809/disk"));
                }
                yield openSpec(uri);
            }
            case RBD -> {
                if (image == null) {
                    yield Mono.error(usage("--target rbd needs --image POOL/IMAGE, e.g. --image rbd/disk1"));
                }
                RbdImageSpec parsed =
                        RbdImageSpec.parse(image.startsWith(RbdImageSpec.SCHEME) ? image : "rbd:" + image);
                yield open(new TargetSpec.Rbd(new RbdImageSpec(
                        parsed.pool(),
                        parsed.image(),
                        snapshot != null ? snapshot : parsed.snapshot(),
                        cephConf != null ? cephConf : parsed.conf(),
                        cephId != null ? cephId : parsed.id(),
                        cephKeyring != null ? cephKeyring : parsed.keyring())));
            }
            case MIRROR, STRIPE, CONCAT -> {
                List<String> specs = target == Target.MIRROR ? replicas : parts;
                String what = target == Target.MIRROR ? "--replica" : "--part";
                if (specs.size() < 2) {
                    yield Mono.error(usage("--target " + target.name().toLowerCase(Locale.ROOT) + " needs at least "
                            + "two " + what + " SPEC options, e.g. " + what + " file:/a.img " + what + " file:/b.img"));
                }
                yield Flux.fromIterable(specs)
                        .concatMap(this::openSpec)
                        .collectList()
                        .flatMap(this::compose);
            }
        };
    }

    /** Opens one target spec, with the shared grammar and opener of {@link TargetSpec}. */
    Mono<BlockBackend> openSpec(String text) {
        TargetSpec spec;
        try {
            spec = TargetSpec.parse(text, TargetPolicy.permissive());
        } catch (TargetSpec.InvalidTargetSpecException e) {
            return Mono.error(usage(e.getMessage()));
        }
        if (readOnly && spec instanceof TargetSpec.File f) {
            spec = new TargetSpec.File(f.path(), f.direct(), true);
        }
        return open(spec);
    }

    /** Opens a spec through the shared opener, keeping what it opened to close after the device. */
    private Mono<BlockBackend> open(TargetSpec spec) {
        NbdOptions.Builder nbd = NbdOptions.builder().requestTimeout(requestTimeout);
        if (reconnects <= 0) {
            nbd.noRetry();
        } else {
            nbd.reconnectAttempts(reconnects);
        }
        TargetSpec.OpenOptions options = TargetSpec.OpenOptions.defaults()
                .nbd(nbd.build())
                .mirror(mirrorOptions())
                .create(create)
                .grow(grow ? size : 0)
                .rbd(RbdOptions.defaults().withOsdTimeout(osdTimeout));
        return TargetSpec.open(spec, TargetPolicy.permissive(), options).map(o -> {
            o.owned().forEach(this::track);
            return o.backend();
        });
    }

    /** The options of every mirror opened: the replica assumed current, if any. */
    private MirrorOptions mirrorOptions() {
        if (assumeCurrent < -1) {
            throw usage("--assume-current " + assumeCurrent + " names no replica: give 0 for the first --replica, 1 "
                    + "for the second...");
        }
        return MirrorOptions.defaults().assumeCurrent(assumeCurrent);
    }

    private Mono<BlockBackend> compose(List<BlockBackend> backends) {
        BlockBackend[] parts = backends.toArray(BlockBackend[]::new);
        if (target == Target.MIRROR) {
            // Assembled from the replicas' superblocks; closed (cleanly) before its replicas.
            return Mono.defer(() -> Backends.assembleMirror(mirrorOptions(), parts))
                    .map(this::track);
        }
        return Mono.fromCallable(() -> switch (target) {
            case STRIPE -> {
                if (chunk > Integer.MAX_VALUE) {
                    throw usage("--chunk " + chunk + " is too large: a stripe chunk is at most 1G");
                }
                yield Backends.stripe((int) chunk, parts);
            }
            case CONCAT -> Backends.concat(parts);
            default -> throw new IllegalStateException(target + " is not a composition");
        });
    }

    private BlockBackend track(BlockBackend b) {
        synchronized (opened) {
            opened.add(b);
        }
        return b;
    }

    /** Closes every backend opened, bounded. */
    void closeAll() {
        // The last opened first: a mirror before its replicas.
        Flux.fromIterable(List.copyOf(opened).reversed())
                .concatMap(b -> b.close().onErrorResume(e -> Mono.empty()))
                .then()
                .block(Duration.ofMinutes(1));
    }

    private static UbdCommand.UsageError usage(String message) {
        return new UbdCommand.UsageError(message);
    }

    static final class SizeConverter implements CommandLine.ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            return UbdCommand.parseSize(value);
        }
    }

    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            return UbdCommand.parseDuration(value);
        }
    }

    static final class TargetConverter implements CommandLine.ITypeConverter<Target> {
        @Override
        public Target convert(String value) {
            try {
                return Target.valueOf(value.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(
                        "unknown target '" + value + "': use null, memory, " + "file, nbd, mirror, stripe or concat");
            }
        }
    }
}

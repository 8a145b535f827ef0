package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.io.KernelQueueTransport;
import dev.reactorubd.io.KernelQueueTransport.DataCopy;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.metrics.MicrometerMetrics;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.uring.Libc;
import dev.reactorubd.uring.MappedRegion;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringIoHandlerConfig;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutor;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.util.retry.Retry;

/**
 * Serves ublk devices from this process: the entry point of the library.
 *
 * <pre>{@code
 * try (UbdServer server = UbdServer.create()) {
 *     UbdDevice dev = server.serve(DeviceSpec.builder().capacityBytes(64 << 20).build(), backend).block();
 *     // ... /dev/ublkbN is live ...
 *     dev.close().block();
 * }
 * }</pre>
 *
 * <h2>Threads</h2>
 * Queues run on Netty io_uring event loops: the caller's ({@link #create(IoEventLoopGroup)}, for embedding in an
 * application's threads; the group must be built with {@code IoUringIoHandler.newFactory()}) or a group this
 * server creates and owns (daemon threads named {@code ubd-loop-N}, one per CPU). Each queue stays on one loop;
 * several queues may share one. Nothing here blocks a caller: every call returns a Mono.
 *
 * <h2>Memory pressure</h2>
 * Every event loop thread that gets a queue is put in IO_FLUSHER state first (see {@link IoFlusher}; once per thread,
 * on that thread, before the queue's first command), so that the kernel never makes a queue thread wait for the
 * writeback it is there to serve; without CAP_SYS_RESOURCE a WARN says so once and devices are served anyway.
 * {@link Builder#lockMemory(boolean)} also locks the process's memory ({@code mlockall}). docs/memory-pressure.md has
 * the JVM settings that go with it.
 *
 * <h2>Metrics and logs</h2>
 * With {@link Builder#meterRegistry} every queue records Micrometer meters (see {@link MicrometerMetrics}); without
 * it nothing of Micrometer is loaded. Lifecycle events (device served, closed) are logged through SLF4J at INFO;
 * nothing per request is logged above DEBUG.
 *
 * <h2>Privileges</h2>
 * Needs {@code /dev/ublk-control} (module {@code ublk_drv}, Linux 6.5+) and CAP_SYS_ADMIN.
 */
public final class UbdServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(UbdServer.class);
    private static final AtomicInteger SERVERS = new AtomicInteger();
    private static final Duration CHAR_DEVICE_WAIT = Duration.ofSeconds(5);

    private final UbdControl control;
    private final IoEventLoopGroup group;
    private final boolean ownsGroup;
    private final DataCopy dataCopy;
    private final boolean zeroCopy;
    private final Duration requestTimeout;
    private final UbdMetrics metrics;
    private final boolean ioFlusher;
    /**
     * Per loop, its task that puts the loop's thread in IO_FLUSHER state, run once and cached: a device opened while
     * another device's task is still queued waits for that one instead of registering its queues before it.
     */
    private final ConcurrentMap<EventExecutor, Mono<Boolean>> flusherLoops = new ConcurrentHashMap<>();

    private final Set<UbdDevice> devices = ConcurrentHashMap.newKeySet();

    private UbdServer(
            UbdControl control,
            IoEventLoopGroup group,
            boolean ownsGroup,
            DataCopy dataCopy,
            boolean zeroCopy,
            Duration requestTimeout,
            UbdMetrics metrics,
            boolean ioFlusher) {
        this.ioFlusher = ioFlusher;
        this.zeroCopy = zeroCopy;
        this.requestTimeout = requestTimeout;
        this.metrics = metrics;
        this.control = control;
        this.group = group;
        this.ownsGroup = ownsGroup;
        this.dataCopy = dataCopy;
    }

    /**
     * A server with its own control handle (default timeout) and its own event loops.
     *
     * @return a server with its own control handle (default timeout) and its own event loops
     * @throws UbdModuleNotLoadedException when ublk_drv is not loaded
     */
    public static UbdServer create() {
        return builder().build();
    }

    /**
     * A server whose queues run on the caller's io_uring event loops.
     *
     * @param group the io_uring event loops
     * @return a server whose queues run on the caller's io_uring event loops
     */
    public static UbdServer create(IoEventLoopGroup group) {
        return builder().eventLoops(group).build();
    }

    /**
     * A builder for a server with other settings than {@link #create()}'s: its control handle, event loops, ring
     * configuration or data copy.
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /** Options of a server; every one has a default. */
    public static final class Builder {
        private UbdControl control;
        private IoEventLoopGroup group;
        private IoUringIoHandlerConfig ringConfig;
        private DataCopy dataCopy = DataCopy.SYSCALL;
        private boolean zeroCopy = true;
        private Duration requestTimeout = BackendBridge.DEFAULT_REQUEST_TIMEOUT;
        private UbdMetrics metrics = UbdMetrics.NONE;
        private boolean ioFlusher = true;
        private boolean lockMemory;

        private Builder() {}

        /**
         * Whether every event loop thread that gets a queue is put in IO_FLUSHER state ({@link IoFlusher}) before its
         * first queue is registered. Default: on, as ublksrv does. Turn it off only for caller-supplied loops whose
         * other work must not run that way (an IO flusher's allocations never start IO to reclaim memory).
         *
         * @param ioFlusher whether queue threads become IO flushers
         * @return this builder
         */
        public Builder ioFlusher(boolean ioFlusher) {
            this.ioFlusher = ioFlusher;
            return this;
        }

        /**
         * Whether {@link #build()} locks the whole process's memory, now and from then on ({@code mlockall(MCL_CURRENT
         * | MCL_FUTURE)}), so that no page of the server is reclaimed while the machine is short of memory and has to
         * be read back, perhaps from a device this process serves. Default: off. It locks everything the JVM maps, so
         * run the JVM with a fixed, pre-touched heap ({@code -Xms} equal to {@code -Xmx}, {@code -XX:+AlwaysPreTouch})
         * and bounded direct memory and code cache: see docs/memory-pressure.md. The lock lasts as long as the process.
         *
         * @param lockMemory whether to lock the process's memory
         * @return this builder
         */
        public Builder lockMemory(boolean lockMemory) {
            this.lockMemory = lockMemory;
            return this;
        }

        /**
         * Records Micrometer meters of every queue into {@code registry} (see {@link MicrometerMetrics} for the
         * meters and tags); needs {@code io.micrometer:micrometer-core} on the class path. Default: no metrics.
         *
         * @param registry where the meters go
         * @return this builder
         */
        public Builder meterRegistry(MeterRegistry registry) {
            this.metrics = MicrometerMetrics.of(registry);
            return this;
        }

        /**
         * Where queues report their requests (any {@link UbdMetrics}); default {@link UbdMetrics#NONE}.
         *
         * @param metrics the recorder factory
         * @return this builder
         */
        public Builder metrics(UbdMetrics metrics) {
            this.metrics = Objects.requireNonNull(metrics, "metrics");
            return this;
        }

        /**
         * The control handle to use (the server closes it); default: {@link UbdControl#open()}.
         *
         * @param control an open control handle
         * @return this builder
         */
        public Builder control(UbdControl control) {
            this.control = Objects.requireNonNull(control, "control");
            return this;
        }

        /**
         * The caller's io_uring event loops (built with {@code IoUringIoHandler.newFactory()}), which the server does
         * not shut down; default: a group of its own, one daemon loop per CPU.
         *
         * @param group the io_uring event loops
         * @return this builder
         */
        public Builder eventLoops(IoEventLoopGroup group) {
            this.group = Objects.requireNonNull(group, "group");
            return this;
        }

        /**
         * The ring configuration of the server's own loops (ignored with {@link #eventLoops}).
         *
         * @param config Netty's io_uring ring settings (ring size, SINGLE_ISSUER...)
         * @return this builder
         */
        public Builder ringConfig(IoUringIoHandlerConfig config) {
            this.ringConfig = Objects.requireNonNull(config, "config");
            return this;
        }

        /**
         * How request data moves; default {@link DataCopy#SYSCALL}, the faster one (see {@link DataCopy}).
         *
         * @param copy the way data is copied between the kernel's request pages and buffers
         * @return this builder
         */
        public Builder dataCopy(DataCopy copy) {
            this.dataCopy = Objects.requireNonNull(copy, "copy");
            return this;
        }

        /**
         * Whether a backend with the {@link BlockBackend.Capability#ZERO_COPY} capability (the file target) gets
         * devices with the kernel's zero copy where the kernel has it ({@code UBLK_F_AUTO_BUF_REG}, Linux 6.16): its
         * READ and WRITE requests then move between the file and the request's own pages with no copy through
         * userspace. Default: on. Other backends, and kernels without it, move data with USER_COPY either way.
         *
         * @param zeroCopy whether to use zero copy where it can be had
         * @return this builder
         */
        public Builder zeroCopy(boolean zeroCopy) {
            this.zeroCopy = zeroCopy;
            return this;
        }

        /**
         * How long a backend may take to answer a request before the request fails with ETIMEDOUT (its late answer
         * is then dropped, a read's buffer released); default {@link BackendBridge#DEFAULT_REQUEST_TIMEOUT} (30 s),
         * {@link Duration#ZERO} to wait forever. It is what keeps a backend whose Mono never completes from hanging a
         * reader, and the device's close.
         *
         * @param timeout the bound on each request's answer, or zero for none
         * @return this builder
         */
        public Builder requestTimeout(Duration timeout) {
            if (timeout == null || timeout.isNegative()) {
                throw new IllegalArgumentException("requestTimeout must be zero or positive; was " + timeout);
            }
            this.requestTimeout = timeout;
            return this;
        }

        /**
         * Locks the process's memory (with {@link #lockMemory(boolean)}; this blocks while every mapped page is
         * faulted in), opens the control device (unless given) and creates the loops (unless given).
         *
         * @return a server; close it to close its own loops and control handle
         * @throws UbdModuleNotLoadedException when ublk_drv is not loaded
         * @throws dev.reactorubd.UbdMemoryLockException when memory is to be locked and the kernel refuses (the
         *         message names RLIMIT_MEMLOCK and how to raise it); nothing else is then opened
         */
        public UbdServer build() {
            if (lockMemory) {
                MemoryLock.lockAll(); // first: a refusal then leaves nothing open
            }
            UbdControl c = control != null ? control : UbdControl.open();
            if (metrics != UbdMetrics.NONE) {
                LOG.info("queue metrics on: {}", metrics.getClass().getSimpleName());
            }
            if (group != null) {
                return new UbdServer(c, group, false, dataCopy, zeroCopy, requestTimeout, metrics, ioFlusher);
            }
            IoEventLoopGroup own = new MultiThreadIoEventLoopGroup(
                    Runtime.getRuntime().availableProcessors(),
                    new DefaultThreadFactory("ubd-loop-" + SERVERS.incrementAndGet(), true),
                    ringConfig != null ? IoUringIoHandler.newFactory(ringConfig) : IoUringIoHandler.newFactory());
            return new UbdServer(c, own, true, dataCopy, zeroCopy, requestTimeout, metrics, ioFlusher);
        }
    }

    /** {@return the control handle, for commands on any device} */
    public UbdControl control() {
        return control;
    }

    /**
     * Adds a device for {@code spec}, serves it from {@code backend} and starts it. The spec's cache, FUA and
     * discard settings are completed from the backend's capabilities. The Mono signals the live device, or an
     * error after removing whatever was created.
     *
     * @param spec what to create
     * @param backend the backend that answers the requests
     * @return a Mono of the live device; it errors with a {@link dev.reactorubd.UbdException} saying what the kernel
     *         refused (the device is then removed)
     */
    public Mono<UbdDevice> serve(DeviceSpec spec, BlockBackend backend) {
        Objects.requireNonNull(backend, "backend");
        DeviceSpec full = withCapabilities(spec, backend.capabilities());
        boolean inPlace = zeroCopy && backend.capabilities().contains(BlockBackend.Capability.ZERO_COPY);
        return withKernelOffers(full, inPlace)
                .flatMap(s -> addAndOpen(s, backend.allocator()))
                .flatMap(device -> serveAndGo(device, backend, device.start(), requestTimeout));
    }

    /** Binds the backend to each queue and wires them, then sends {@code go}; closes the device if that fails. */
    private static Mono<UbdDevice> serveAndGo(
            UbdDevice device, BlockBackend backend, Mono<Void> go, Duration requestTimeout) {
        device.servedBy(backend);
        return BackendBridge.attachAll(device.queues(), backend, requestTimeout)
                .doOnNext(device::addBridge)
                .then(go)
                .doOnSuccess(v -> LOG.info(
                        "device {} is live at {}: {} queue(s) x {} tags, served by {}{}",
                        device.id(),
                        device.blockDevicePath(),
                        device.info().queues(),
                        device.info().depth(),
                        backend,
                        device.info().has(UblkFeature.AUTO_BUF_REG) ? ", zero copy (AUTO_BUF_REG)" : ""))
                .thenReturn(device)
                .onErrorResume(
                        e -> device.close().onErrorResume(x -> Mono.empty()).then(Mono.error(e)));
    }

    /** Retries every 100 ms, for at most {@code bound}, while the error is a {@code type}. */
    private static Retry whileFailingWith(Class<? extends Throwable> type, Duration bound) {
        return Retry.fixedDelay(bound.toMillis() / 100, Duration.ofMillis(100))
                .filter(type::isInstance)
                .onRetryExhaustedThrow((spec, signal) -> signal.failure() instanceof NotYet n
                        ? new UbdDeviceBusyException(n.getMessage() + " after " + bound, Errno.EBUSY)
                        : signal.failure());
    }

    /**
     * Adds a device and opens its queues (every tag fetched) without starting it: subscribe to each queue's
     * {@link UbdQueue#requests()}, then call {@link UbdDevice#start()}. When the kernel offers
     * {@link UblkFeature#UPDATE_SIZE} the device is added with it (whatever the spec says), so that
     * {@link UbdDevice#resize} works.
     *
     * @param spec what to create
     * @param allocator where WRITE data is read into
     * @return a Mono of the device, added but not started, whose queues await a subscriber
     */
    public Mono<UbdDevice> open(DeviceSpec spec, ByteBufAllocator allocator) {
        Objects.requireNonNull(spec, "spec");
        Objects.requireNonNull(allocator, "allocator");
        return withKernelOffers(spec, false).flatMap(full -> addAndOpen(full, allocator));
    }

    /**
     * The spec plus {@link UblkFeature#UPDATE_SIZE} when the kernel offers it (GET_FEATURES), so that every device
     * served can be resized: the flag only allows the UPDATE_SIZE command, it changes nothing else; and plus
     * {@link UblkFeature#AUTO_BUF_REG} when {@code zeroCopy} (the backend serves in place) and the kernel offers it. One
     * GET_FEATURES for both. A kernel without GET_FEATURES leaves the spec as it is (addDevice then says what is
     * missing).
     */
    private Mono<DeviceSpec> withKernelOffers(DeviceSpec spec, boolean zeroCopy) {
        return control.featureMask()
                .map(mask -> {
                    DeviceSpec.Builder b = spec.toBuilder();
                    if ((mask & UblkFeature.UPDATE_SIZE.mask()) != 0) {
                        b.feature(UblkFeature.UPDATE_SIZE);
                    }
                    if (zeroCopy && (mask & UblkFeature.AUTO_BUF_REG.mask()) != 0) {
                        b.feature(UblkFeature.AUTO_BUF_REG); // see docs/zero-copy.md
                    }
                    return b.build();
                })
                .onErrorReturn(UbdUnsupportedException.class, spec);
    }

    private Mono<UbdDevice> addAndOpen(DeviceSpec spec, ByteBufAllocator allocator) {
        return control.addDevice(spec)
                .flatMap(info -> control.setParams(info.id(), spec)
                        .then(openQueues(info, allocator))
                        .onErrorResume(e -> control.deleteDevice(info.id())
                                .onErrorResume(x -> Mono.empty())
                                .then(Mono.error(e))));
    }

    /**
     * Takes over a device whose server died, as ublk's user recovery allows (the device must have been added with
     * {@link dev.reactorubd.ctrl.UblkFeature#USER_RECOVERY}): waits, within three control timeouts, for the kernel to
     * quiesce it; sends START_USER_RECOVERY ({@link UbdControl#startUserRecovery} retries it while the dead server's
     * char device is still being released);
     * opens the queues and serves them from {@code backend}; and sends END_USER_RECOVERY, which the kernel holds until
     * every tag is fetched. IO that waited meanwhile is then served (with
     * {@link dev.reactorubd.ctrl.UblkFeature#USER_RECOVERY_REISSUE}, in-flight IO of the dead server too).
     *
     * @param devId the device id
     * @param backend the backend that answers the requests
     * @return the live device, now this server's
     */
    public Mono<UbdDevice> recover(int devId, BlockBackend backend) {
        Objects.requireNonNull(backend, "backend");
        // The kernel quiesces a device some time after its server died (its monitor notices, in-flight requests are
        // requeued): allow three control timeouts for that, since an emulated or loaded machine takes its time.
        return awaitRecoverable(devId)
                .retryWhen(whileFailingWith(NotYet.class, control.timeout().multipliedBy(3)))
                .flatMap(info -> control.startUserRecovery(devId).thenReturn(info))
                .flatMap(info -> openQueues(info, backend.allocator()))
                .flatMap(device -> serveAndGo(device, backend, control.endUserRecovery(devId), requestTimeout));
    }

    /** The device's info once it waits for a new server; {@link NotYet} while its old server is still going. */
    private Mono<DeviceInfo> awaitRecoverable(int devId) {
        return control.deviceInfo(devId).flatMap(info -> {
            if (!info.has(UblkFeature.USER_RECOVERY)) {
                return Mono.error(new UbdUnsupportedException("device " + devId + " was added without USER_RECOVERY, "
                        + "so it cannot be taken over; remove it (UbdControl.removeDevice) and add it again"));
            }
            return switch (info.state()) {
                case QUIESCED, FAIL_IO -> Mono.just(info);
                case LIVE ->
                    ProcessHandle.of(info.serverPid())
                                    .filter(ProcessHandle::isAlive)
                                    .isPresent()
                            ? Mono.error(new UbdDeviceBusyException(
                                    "device " + devId + " is served by process " + info.serverPid()
                                            + ", which is alive: stop it first",
                                    Errno.EBUSY))
                            : Mono.error(new NotYet("device " + devId + " is not quiesced yet"));
                default ->
                    Mono.error(new NotYet("device " + devId + " is " + info.state() + ", not waiting for recovery"));
            };
        });
    }

    private static final class NotYet extends RuntimeException {
        private static final long serialVersionUID = 1L;

        NotYet(String message) {
            super(message, null, false, false);
        }
    }

    static DeviceSpec withCapabilities(DeviceSpec spec, Set<BlockBackend.Capability> caps) {
        DeviceSpec.Builder b = spec.toBuilder();
        if (caps.contains(BlockBackend.Capability.FLUSH)) {
            b.volatileCache(true);
        }
        if (caps.contains(BlockBackend.Capability.FUA) && caps.contains(BlockBackend.Capability.FLUSH)) {
            b.fua(true);
        }
        boolean discard = caps.contains(BlockBackend.Capability.DISCARD);
        boolean zeroes = caps.contains(BlockBackend.Capability.WRITE_ZEROES);
        if (spec.discard() == null && (discard || zeroes) && !spec.readOnly()) {
            long max = Math.min(1L << 30, spec.capacityBytes() / 512 * 512);
            b.discard(new DeviceSpec.Discard(spec.physicalBlockSize(), 0, discard ? max : 0, zeroes ? max : 0));
        }
        return b.build();
    }

    private Mono<UbdDevice> openQueues(DeviceInfo info, ByteBufAllocator allocator) {
        return openCharDevice(info).flatMap(fd -> {
            List<MappedRegion> areas = new ArrayList<>();
            List<UbdQueue> queues = new ArrayList<>();
            try {
                long page = Libc.pageSize();
                for (int q = 0; q < info.queues(); q++) {
                    areas.add(MappedRegion.mapReadOnly(
                            fd, UblkIo.descAreaOffset(q, page), UblkIo.descAreaLength(info.depth(), page)));
                    queues.add(new UbdQueue(info.id(), q, info.depth(), group.next(), allocator, metrics));
                }
            } catch (RuntimeException e) {
                areas.forEach(MappedRegion::close);
                Libc.close(fd);
                return Mono.error(e);
            }
            return ioFlushers(queues)
                    .thenMany(Flux.range(0, queues.size()))
                    .concatMap(q -> KernelQueueTransport.register(
                            queues.get(q), fd, areas.get(q), dataCopy, info.has(UblkFeature.AUTO_BUF_REG)))
                    .collectList()
                    .map(transports -> {
                        for (int q = 0; q < queues.size(); q++) {
                            queues.get(q).start(transports.get(q));
                        }
                        UbdDevice[] self = new UbdDevice[1];
                        self[0] = new UbdDevice(control, info, queues, transports, fd, () -> devices.remove(self[0]));
                        devices.add(self[0]);
                        return self[0];
                    })
                    .onErrorResume(e -> {
                        areas.forEach(MappedRegion::close);
                        Libc.close(fd);
                        return Mono.error(e);
                    });
        });
    }

    /**
     * Puts the thread of every loop among {@code queues}' that has not had it from this server in IO_FLUSHER state,
     * on that thread, before any queue there is registered: io-wq workers the kernel creates for the thread afterwards
     * inherit the state, and the queue's first fetch already runs as an IO flusher. A refusal is logged (once, by
     * {@link IoFlusher}) and the queues are served anyway.
     */
    private Mono<Void> ioFlushers(List<UbdQueue> queues) {
        if (!ioFlusher) {
            return Mono.empty();
        }
        return Flux.fromIterable(queues)
                .map(UbdQueue::loop)
                .distinct()
                .concatMap(loop -> flusherLoops.computeIfAbsent(
                        loop, l -> IoFlusher.enable(l).cache()))
                .then();
    }

    /** Opens /dev/ublkcN, waiting briefly for devtmpfs to create the node after ADD_DEV. */
    private static Mono<Integer> openCharDevice(DeviceInfo info) {
        String path = info.charDevicePath();
        return Mono.fromCallable(() -> {
                    int fd = Libc.open(path, Libc.O_RDWR | Libc.O_CLOEXEC);
                    if (fd == -Errno.ENOENT) {
                        throw new NodeMissing();
                    }
                    if (fd < 0) {
                        throw new UbdException(
                                "cannot open " + path + ": " + Errno.describe(fd)
                                        + (fd == -Errno.EBUSY ? "; another server has it open" : ""),
                                fd);
                    }
                    return fd;
                })
                .subscribeOn(Schedulers.boundedElastic())
                .retryWhen(Retry.fixedDelay(CHAR_DEVICE_WAIT.toMillis() / 20, Duration.ofMillis(20))
                        .filter(NodeMissing.class::isInstance)
                        .onRetryExhaustedThrow((spec, signal) -> new UbdException(
                                path + " did not appear within " + CHAR_DEVICE_WAIT
                                        + " of ADD_DEV: is devtmpfs mounted on /dev?",
                                Errno.ENOENT)));
    }

    private static final class NodeMissing extends RuntimeException {
        private static final long serialVersionUID = 1L;

        NodeMissing() {
            super(null, null, false, false);
        }
    }

    /** {@return devices served by this server and not yet closed} */
    public Set<UbdDevice> devices() {
        return Set.copyOf(devices);
    }

    /**
     * Closes every device still served (stop, drain, delete), then the control handle and, if this server created
     * them, its event loops. Blocks until done, bounded by the control timeout per device: call it from a thread
     * that may block, such as a shutdown hook.
     */
    @Override
    public void close() {
        try {
            Flux.fromIterable(devices())
                    .flatMap(d -> d.close().onErrorResume(e -> Mono.empty()))
                    .then()
                    .block(control.timeout().multipliedBy(3));
        } finally {
            control.close();
            if (ownsGroup) {
                group.shutdownGracefully(0, 2, TimeUnit.SECONDS);
            }
        }
    }
}

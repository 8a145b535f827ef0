package dev.reactorubd.ctrl;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdClosedException;
import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.sys.UblkCtrlCmd;
import dev.reactorubd.sys.UblkDevInfo;
import dev.reactorubd.sys.UblkParams;
import dev.reactorubd.uring.ControlRing;
import dev.reactorubd.uring.IoUringAbi;
import dev.reactorubd.uring.Libc;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.util.retry.Retry;

/**
 * The ublk control device, {@code /dev/ublk-control}: add, configure, start, stop, recover, inspect and delete
 * devices.
 *
 * <h2>Behaviour</h2>
 * Every call returns a lazy {@code Mono} (nothing happens until subscription) that sends one control command, or
 * a short fixed sequence, through an io_uring with 128-byte SQEs. Each command is bounded by this handle's
 * timeout; a command still waiting then is cancelled in the kernel and the Mono fails with
 * {@link UbdTimeoutException}. Kernel refusals become typed {@link UbdException}s that carry the errno and say
 * what to do: {@link UbdPermissionException}, {@link UbdDeviceBusyException}, {@link UbdNoSuchDeviceException},
 * {@link UbdUnsupportedException}.
 *
 * <h2>Threading</h2>
 * Calls may be made from any thread, event loops included: they never block the caller. Results are signalled on
 * the control ring's thread ({@code ubd-control-N}); move heavy or blocking work elsewhere with
 * {@code publishOn}. {@link #listDevices()} reads sysfs on {@code Schedulers.boundedElastic()}.
 *
 * <h2>Lifecycle of a device</h2>
 * {@link #addDevice} then {@link #setParams}, then the server opens {@code /dev/ublkcN} and fetches every tag,
 * then {@link #startDevice} (which the kernel holds until every tag is fetched), serve, {@link #stopDevice}, close
 * the queues, {@link #deleteDevice}. The queue side lives in the server layer; this class only sends commands.
 */
public final class UbdControl implements AutoCloseable {
    /** The control device's path. */
    public static final Path CONTROL_PATH = Path.of("/dev/ublk-control");
    /** The bound of each command unless another is given. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

    private static final Path SYSFS_CHAR_CLASS = Path.of("/sys/class/ublk-char");
    private static final Pattern CHAR_NAME = Pattern.compile("ublkc(\\d+)");
    private static final int RING_ENTRIES = 64;

    private final int fd;
    private final ControlRing ring;
    private final Duration timeout;
    private final AtomicBoolean closed = new AtomicBoolean();

    private UbdControl(int fd, ControlRing ring, Duration timeout) {
        this.fd = fd;
        this.ring = ring;
        this.timeout = timeout;
    }

    /**
     * Opens {@code /dev/ublk-control} with {@link #DEFAULT_TIMEOUT}.
     *
     * @return an open control handle; close it when done
     */
    public static UbdControl open() {
        return open(CONTROL_PATH, DEFAULT_TIMEOUT);
    }

    /**
     * Opens a control device. The open itself returns at once (it is a character device).
     *
     * @param controlPath the control device, normally {@link #CONTROL_PATH}
     * @param timeout the bound of each control command, positive
     * @return an open control handle; close it when done
     * @throws UbdModuleNotLoadedException when the device does not exist: {@code modprobe ublk_drv}
     * @throws UbdPermissionException      when the caller may not open it
     */
    public static UbdControl open(Path controlPath, Duration timeout) {
        Objects.requireNonNull(controlPath, "controlPath");
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive; was " + timeout);
        }
        int fd = Libc.open(controlPath.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd == -Errno.ENOENT || fd == -Errno.ENODEV || fd == -Errno.ENXIO) {
            throw new UbdModuleNotLoadedException(
                    controlPath + " does not exist: the ublk driver is not loaded. "
                            + "Load it with `modprobe ublk_drv` (needs Linux 6.0+ built with CONFIG_BLK_DEV_UBLK; "
                            + "this library needs 6.5+ for USER_COPY)",
                    fd);
        }
        if (fd == -Errno.EACCES || fd == -Errno.EPERM) {
            throw new UbdPermissionException(
                    "cannot open " + controlPath + ": " + Errno.describe(fd)
                            + ". Run as root (CAP_SYS_ADMIN), or grant access to the control device with a udev rule "
                            + "for unprivileged devices",
                    fd);
        }
        if (fd < 0) {
            throw new UbdException("cannot open " + controlPath + ": " + Errno.describe(fd), fd);
        }
        try {
            return new UbdControl(fd, ControlRing.open("ubd-control", RING_ENTRIES), timeout);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /** {@return the bound of each command} */
    public Duration timeout() {
        return timeout;
    }

    // ------------------------------------------------------------------------------------------------ commands

    /**
     * The features this kernel supports (GET_FEATURES, Linux 6.5+).
     *
     * @return a Mono of the feature set; {@link UbdUnsupportedException} on kernels before 6.5
     */
    public Mono<Set<UblkFeature>> features() {
        return featureMask().map(UblkFeature::fromMask);
    }

    /** {@return the raw feature mask of GET_FEATURES, with bits this library may not name} */
    public Mono<Long> featureMask() {
        return command(UblkCtrlCmd.GET_FEATURES, -1, 0, 8, null, (res, buf) -> buf.get(ValueLayout.JAVA_LONG, 0));
    }

    /**
     * Adds a device (ADD_DEV) after checking that this kernel has every feature the spec requests. The device is
     * DEAD until started.
     *
     * @param spec what to create
     * @return the negotiated device info: use its queue count, depth and id, not the spec's
     */
    public Mono<DeviceInfo> addDevice(DeviceSpec spec) {
        Objects.requireNonNull(spec, "spec");
        return featureMask()
                .onErrorMap(
                        UbdUnsupportedException.class,
                        e -> new UbdUnsupportedException(
                                "this kernel has no GET_FEATURES, so it predates Linux 6.5 and has no USER_COPY, which "
                                        + "reactor-ubd needs: run Linux 6.5 or newer",
                                e.errno(),
                                e))
                .flatMap(mask -> {
                    for (UblkFeature f : spec.features()) {
                        if ((mask & f.mask()) == 0) {
                            return Mono.error(new UbdUnsupportedException("this kernel does not support " + f
                                    + " (added in Linux " + f.since() + "); drop it from the DeviceSpec or run a "
                                    + "newer kernel"));
                        }
                    }
                    return command(
                            UblkCtrlCmd.ADD_DEV,
                            spec.deviceId(),
                            0,
                            UblkDevInfo.SIZE,
                            buf -> {
                                UblkDevInfo.nrHwQueues(buf, spec.queues());
                                UblkDevInfo.queueDepth(buf, spec.depth());
                                UblkDevInfo.maxIoBufBytes(buf, spec.maxIoBytes());
                                UblkDevInfo.devId(buf, spec.deviceId());
                                UblkDevInfo.flags(buf, spec.featureMask());
                            },
                            (res, buf) -> DeviceInfo.read(buf));
                });
    }

    /**
     * Sets a device's parameters from its spec (SET_PARAMS); only before START_DEV.
     *
     * @param devId the device id
     * @param spec the spec whose parameters to set
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> setParams(int devId, DeviceSpec spec) {
        return setParams(devId, DeviceParams.of(spec));
    }

    /**
     * Sets a device's parameters (SET_PARAMS); only before START_DEV.
     *
     * @param devId the device id
     * @param params the parameters, as {@link DeviceParams#of(DeviceSpec)} makes them from a spec
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> setParams(int devId, DeviceParams params) {
        Objects.requireNonNull(params, "params");
        return command(UblkCtrlCmd.SET_PARAMS, devId, 0, UblkParams.SIZE, params::write, (res, buf) -> null);
    }

    /**
     * The parameters in force (GET_PARAMS), with the device numbers once started.
     *
     * @param devId the device id
     * @return the parameters in force (GET_PARAMS), with the device numbers once started
     */
    public Mono<DeviceParams> getParams(int devId) {
        return command(
                UblkCtrlCmd.GET_PARAMS,
                devId,
                0,
                UblkParams.SIZE,
                buf -> UblkParams.len(buf, (int) UblkParams.SIZE),
                (res, buf) -> DeviceParams.read(buf));
    }

    /**
     * A device's info (GET_DEV_INFO).
     *
     * @param devId the device id
     * @return a Mono of the device's info, or a {@link UbdNoSuchDeviceException} when there is no such device
     */
    public Mono<DeviceInfo> deviceInfo(int devId) {
        return command(UblkCtrlCmd.GET_DEV_INFO, devId, 0, UblkDevInfo.SIZE, null, (res, buf) -> DeviceInfo.read(buf));
    }

    /**
     * Starts a device (START_DEV) on behalf of this process. The kernel holds the command until every tag of every
     * queue has been fetched, then adds {@code /dev/ublkbN} and scans it for partitions, which already reads
     * through the queues: subscribe to this only once the queues serve.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> startDevice(int devId) {
        return command(UblkCtrlCmd.START_DEV, devId, ProcessHandle.current().pid(), 0, null, (res, buf) -> null);
    }

    /**
     * Stops a device (STOP_DEV): removes {@code /dev/ublkbN}, lets in-flight IO drain, and completes pending
     * fetches with {@code -ENODEV}. Stopping a device that is not started is a no-op.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> stopDevice(int devId) {
        return command(UblkCtrlCmd.STOP_DEV, devId, 0, 0, null, (res, buf) -> null);
    }

    /**
     * Deletes a device (DEL_DEV). The kernel waits until nothing holds the device: every fd and mapping of its
     * char device closed, and the block device gone; bounded by this handle's timeout like every command.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> deleteDevice(int devId) {
        return command(UblkCtrlCmd.DEL_DEV, devId, 0, 0, null, (res, buf) -> null);
    }

    /**
     * Deletes a device without waiting for its last reference (DEL_DEV_ASYNC, Linux 6.9+); the id is freed
     * when the last holder lets go.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> deleteDeviceAsync(int devId) {
        return command(UblkCtrlCmd.DEL_DEV_ASYNC, devId, 0, 0, null, (res, buf) -> null);
    }

    /**
     * Stops then deletes a device: the way to remove one left behind by a server that died. A device whose block
     * device is still held (a file system mounted from it, a device stacked on it, a process with it open) is refused
     * up front with {@link UbdDeviceBusyException} naming the holders, since DEL_DEV would wait for them: unmount or
     * close it, or use {@link #removeDeviceAsync}.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> removeDevice(int devId) {
        return Mono.fromCallable(() -> DeviceHolders.of(devId))
                .subscribeOn(Schedulers.boundedElastic())
                .timeout(timeout)
                .flatMap(holders -> holders.isEmpty()
                        ? stopDevice(devId).then(deleteDevice(devId))
                        : Mono.error(new UbdDeviceBusyException(
                                "device " + devId + " is in use: "
                                        + String.join(", ", holders)
                                        + ". Unmount or close it first, or remove it asynchronously "
                                        + "(removeDeviceAsync, `ubd remove --async`): the id is then freed when the last holder lets go",
                                Errno.EBUSY)));
    }

    /**
     * Stops a device and deletes it without waiting for its holders (DEL_DEV_ASYNC, Linux 6.9+): the block device
     * goes away at once, its holders see IO errors, and the id is freed when the last of them lets go.
     *
     * @param devId the device id
     * @return a Mono that completes once the device is stopped and its deletion queued
     */
    public Mono<Void> removeDeviceAsync(int devId) {
        return stopDevice(devId).then(deleteDeviceAsync(devId));
    }

    /**
     * Changes the size of a started device (UPDATE_SIZE, Linux 6.16+): the kernel sets the new capacity and tells
     * the block layer and udev (a RESIZE uevent), so {@code /dev/ublkbN} grows or shrinks at once while it serves.
     * The server's backend must be able to serve the new size: {@code UbdDevice.resize} checks that, this command
     * cannot.
     *
     * <p>The kernel checks nothing itself (on 6.18 it does not look at the device's flags, and it oopses when the
     * device has no disk, before START_DEV or after STOP_DEV), so this method asks first, with GET_FEATURES,
     * GET_DEV_INFO and GET_PARAMS, and refuses without sending UPDATE_SIZE:
     * <ul>
     *   <li>{@link UbdUnsupportedException} when the kernel has no UPDATE_SIZE or the device was added without
     *   {@link UblkFeature#UPDATE_SIZE};</li>
     *   <li>{@link UbdDeviceStateException} when the device is not LIVE, QUIESCED or FAIL_IO (not started, or
     *   stopped);</li>
     *   <li>{@link UbdException} with errno EINVAL when the size is not a positive multiple of the device's logical
     *   block size.</li>
     * </ul>
     * A device stopped between these checks and the command is not covered: do not race a resize with a stop.
     *
     * @param devId the device id
     * @param newSizeBytes the new size in bytes, a positive multiple of the logical block size
     * @return a Mono that completes once the kernel has the new size
     */
    public Mono<Void> updateSize(int devId, long newSizeBytes) {
        return featureMask()
                .onErrorReturn(UbdUnsupportedException.class, 0L)
                .zipWith(deviceInfo(devId))
                .flatMap(t -> getParams(devId).flatMap(params -> {
                    UbdException refusal =
                            checkUpdateSize(t.getT1(), t.getT2(), params.logicalBlockSize(), newSizeBytes);
                    return refusal != null
                            ? Mono.<Void>error(refusal)
                            : command(UblkCtrlCmd.UPDATE_SIZE, devId, newSizeBytes >>> 9, 0, null, (res, buf) -> null);
                }));
    }

    /**
     * Why UPDATE_SIZE must not be sent, or null when it may: the checks of {@link #updateSize}, without the kernel.
     *
     * @param kernelMask the kernel's GET_FEATURES mask (0 when it has none)
     * @param info the device's info (GET_DEV_INFO)
     * @param logicalBlockSize the device's logical block size (GET_PARAMS)
     * @param newSizeBytes the size asked for
     * @return the refusal, or null
     */
    static UbdException checkUpdateSize(long kernelMask, DeviceInfo info, int logicalBlockSize, long newSizeBytes) {
        if ((kernelMask & UblkFeature.UPDATE_SIZE.mask()) == 0) {
            return new UbdUnsupportedException("this kernel cannot resize ublk devices: it does not report "
                    + "UPDATE_SIZE (added in Linux " + UblkFeature.UPDATE_SIZE.since() + "); run a newer kernel");
        }
        if (!info.has(UblkFeature.UPDATE_SIZE)) {
            return new UbdUnsupportedException("device " + info.id() + " was added without UPDATE_SIZE, so it "
                    + "cannot be resized: add it with DeviceSpec feature UPDATE_SIZE (UbdServer.serve does so "
                    + "whenever the kernel has it)");
        }
        switch (info.state()) {
            case LIVE, QUIESCED, FAIL_IO -> {}
            default -> {
                return new UbdDeviceStateException("device " + info.id() + " is " + info.state() + ": only a "
                        + "started device (LIVE, QUIESCED or FAIL_IO) can be resized; start it first");
            }
        }
        if (newSizeBytes <= 0 || newSizeBytes % logicalBlockSize != 0) {
            return new UbdException(
                    "size " + newSizeBytes + " is not a positive multiple of device " + info.id()
                            + "'s logical block size (" + logicalBlockSize + " bytes): round it to one, such as "
                            + Math.max(logicalBlockSize, newSizeBytes / logicalBlockSize * logicalBlockSize),
                    Errno.EINVAL);
        }
        return null;
    }

    /**
     * Quiesces a live device (QUIESCE_DEV, Linux 6.16+; the device needs {@link UblkFeature#QUIESCE}): the kernel
     * stops sending it new requests (they wait, or fail with FAIL_IO recovery), waits at most {@code wait} for an idle
     * tag on every queue, and completes the fetches of idle tags with {@code -ENODEV}. The device stays LIVE until its
     * server closes and unmaps {@code /dev/ublkcN}; then it is QUIESCED (or FAIL_IO) and another server can take it
     * over with user recovery. Requests the server still holds are answered as usual, but on 6.18 each answer parks
     * a new fetch that only another QUIESCE_DEV (or STOP_DEV) completes: {@code UbdDevice.quiesce} does all of that.
     *
     * @param devId the device id
     * @param wait how long the kernel may wait for idle tags, positive (at most about 49 days)
     * @return a Mono that completes once done; {@link UbdUnsupportedException} when the device has no QUIESCE,
     *         {@link UbdTimeoutException} when the kernel's wait ran out (the device keeps refusing new requests
     *         until it is recovered or stopped)
     */
    public Mono<Void> quiesceDevice(int devId, Duration wait) {
        if (wait == null || wait.isNegative() || wait.isZero() || wait.toMillis() >= 0xFFFF_FFFFL) {
            return Mono.error(new IllegalArgumentException("wait must be positive and below 2^32 ms; was " + wait));
        }
        return deviceInfo(devId)
                .flatMap(info -> info.has(UblkFeature.QUIESCE)
                        ? command(
                                UblkCtrlCmd.QUIESCE_DEV,
                                devId,
                                wait.toMillis(),
                                0,
                                null,
                                (res, buf) -> null,
                                timeout.plus(wait))
                        : Mono.error(
                                new UbdUnsupportedException("device " + devId + " was added without QUIESCE, so it "
                                        + "cannot be quiesced: add it with DeviceSpec features USER_RECOVERY and QUIESCE (Linux "
                                        + UblkFeature.QUIESCE.since() + "+)")));
    }

    /**
     * Begins recovering a device whose server died (START_USER_RECOVERY); needs {@link UblkFeature#USER_RECOVERY}.
     * The kernel refuses it (EBUSY) while the old server's char device is still open: a dead server's is released
     * once the kernel has torn its io_uring down, so the command is retried every 100 ms within the control timeout.
     * Past that it signals {@link UbdDeviceBusyException} naming the processes that hold {@code /dev/ublkcN}, or
     * saying that none does: then the kernel kept the dead server's reference, which happens when a server is killed
     * during its own recovery (docs/recovery.md), and the device can only be removed, with {@link #removeDeviceAsync}.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> startUserRecovery(int devId) {
        String path = DeviceInfo.charDevicePath(devId);
        Mono<Void> start = command(UblkCtrlCmd.START_USER_RECOVERY, devId, 0, 0, null, (res, buf) -> null);
        return start.retryWhen(Retry.fixedDelay(Math.max(1, timeout.toMillis() / 100), Duration.ofMillis(100))
                        .filter(UbdDeviceBusyException.class::isInstance)
                        .onRetryExhaustedThrow((spec, signal) -> signal.failure()))
                .onErrorResume(
                        UbdDeviceBusyException.class,
                        busy -> Mono.fromCallable(() -> DeviceHolders.ofCharDevice(devId))
                                .subscribeOn(Schedulers.boundedElastic())
                                .timeout(timeout)
                                .onErrorReturn(List.of())
                                .flatMap(holders -> Mono.<Void>error(new UbdDeviceBusyException(
                                        "START_USER_RECOVERY of device "
                                                + devId + " was refused for " + timeout.toSeconds() + " s: EBUSY. "
                                                + path + " is still open ("
                                                + (holders.isEmpty()
                                                        ? "by no process: the kernel still holds the dead server's "
                                                                + "reference, which it may never let go"
                                                        : String.join(", ", holders))
                                                + "). Close what holds it and recover again, or remove the device without waiting for "
                                                + "its holders (removeDeviceAsync, `ubd remove --async`) and add it again",
                                        Errno.EBUSY))));
    }

    /**
     * Ends recovery (END_USER_RECOVERY) on behalf of this process; like START_DEV, the kernel holds it until every
     * tag has been fetched again.
     *
     * @param devId the device id
     * @return a Mono that completes once done, or signals a {@link UbdException} saying what the kernel refused
     */
    public Mono<Void> endUserRecovery(int devId) {
        return command(
                UblkCtrlCmd.END_USER_RECOVERY, devId, ProcessHandle.current().pid(), 0, null, (res, buf) -> null);
    }

    /**
     * {@return every ublk device on this machine, in id order, found through sysfs ({@code /sys/class/ublk-char}) and
     * described by GET_DEV_INFO; devices deleted meanwhile are skipped}
     */
    public Flux<DeviceInfo> listDevices() {
        return Mono.fromCallable(UbdControl::deviceIdsFromSysfs)
                .subscribeOn(Schedulers.boundedElastic())
                .flatMapMany(Flux::fromIterable)
                .concatMap(id -> deviceInfo(id).onErrorResume(UbdNoSuchDeviceException.class, e -> Mono.empty()));
    }

    private static List<Integer> deviceIdsFromSysfs() throws IOException {
        List<Integer> ids = new ArrayList<>();
        if (!Files.isDirectory(SYSFS_CHAR_CLASS)) {
            return ids;
        }
        try (Stream<Path> entries = Files.list(SYSFS_CHAR_CLASS)) {
            entries.forEach(p -> {
                Matcher m = CHAR_NAME.matcher(p.getFileName().toString());
                if (m.matches()) {
                    ids.add(Integer.parseInt(m.group(1)));
                }
            });
        }
        ids.sort(null);
        return ids;
    }

    /**
     * Closes the control ring and the control device. Commands still in flight fail with
     * {@link UbdClosedException}. Devices are not touched: they live until deleted.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            ring.close();
            Libc.close(fd);
        }
    }

    // ------------------------------------------------------------------------------------------------ plumbing

    private <T> Mono<T> command(
            int cmdOp,
            int devId,
            long data,
            long bufLen,
            Consumer<MemorySegment> fill,
            BiFunction<Integer, MemorySegment, T> onSuccess) {
        return command(cmdOp, devId, data, bufLen, fill, onSuccess, timeout);
    }

    private <T> Mono<T> command(
            int cmdOp,
            int devId,
            long data,
            long bufLen,
            Consumer<MemorySegment> fill,
            BiFunction<Integer, MemorySegment, T> onSuccess,
            Duration bound) {
        String what = UblkCtrlCmd.name(cmdOp) + (devId >= 0 ? " of device " + devId : "");
        return Mono.defer(() -> {
                    if (closed.get()) {
                        return Mono.error(new UbdClosedException("the ublk control handle is closed"));
                    }
                    return ring.submit(new ControlRing.Operation<T>() {
                        private MemorySegment buf = MemorySegment.NULL;

                        @Override
                        public void prepare(MemorySegment sqe, Arena arena) {
                            if (bufLen > 0) {
                                buf = arena.allocate(bufLen, 8);
                                if (fill != null) {
                                    fill.accept(buf);
                                }
                            }
                            sqe.set(ValueLayout.JAVA_BYTE, IoUringAbi.SQE_OPCODE, (byte) IoUringAbi.OP_URING_CMD);
                            sqe.set(ValueLayout.JAVA_INT, IoUringAbi.SQE_FD, fd);
                            sqe.set(ValueLayout.JAVA_INT, IoUringAbi.SQE_OFF, cmdOp);
                            UblkCtrlCmd.write(
                                    sqe.asSlice(IoUringAbi.SQE_CMD, UblkCtrlCmd.SIZE),
                                    devId,
                                    UblkCtrlCmd.NO_QUEUE,
                                    (int) bufLen,
                                    buf.address(),
                                    data);
                        }

                        @Override
                        public T complete(int res) {
                            if (res < 0) {
                                throw errorFor(cmdOp, what, res);
                            }
                            return onSuccess.apply(res, buf);
                        }
                    });
                })
                .timeout(
                        bound,
                        Mono.defer(() -> Mono.error(new UbdTimeoutException(
                                what + " did not complete within "
                                        + bound
                                        + "; it was cancelled. If a device was left behind, inspect it with deviceInfo "
                                        + "and remove it with removeDevice",
                                Errno.ETIMEDOUT))));
    }

    /** Maps a negative CQE result to the exception that says what to do. */
    static UbdException errorFor(int cmdOp, String what, int res) {
        String errno = Errno.describe(res);
        int nr = cmdOp & 0xff;
        switch (-res) {
            case Errno.EPERM:
                return new UbdPermissionException(
                        what + " was refused: " + errno + ". ublk devices need "
                                + "CAP_SYS_ADMIN: run the server as root",
                        res);
            case Errno.EACCES:
                if (nr == UblkCtrlCmd.NR_SET_PARAMS) {
                    return new UbdDeviceBusyException(
                            what + " was refused: " + errno + ". Parameters can only be "
                                    + "set while the device is not started (not during recovery either)",
                            res);
                }
                return new UbdPermissionException(
                        what + " was refused: " + errno + ". Only the device's owner "
                                + "(or CAP_SYS_ADMIN) may do this",
                        res);
            case Errno.EBUSY:
                if (nr == UblkCtrlCmd.NR_QUIESCE_DEV) {
                    return new UbdTimeoutException(
                            what + " timed out: " + errno + ". A queue had no idle tag "
                                    + "within the wait given (its requests are still with the backend); the device stays "
                                    + "LIVE and takes no new requests: quiesce again, or stop it",
                            res);
                }
                return new UbdDeviceBusyException(
                        what + " was refused: " + errno + ". The device is in use: "
                                + "a server still has it open, it is started, or a filesystem on it is mounted; stop or "
                                + "close what holds it and try again",
                        res);
            case Errno.EEXIST:
                return new UbdDeviceBusyException(
                        what + " was refused: " + errno + ". That device id is taken: "
                                + "pick another or use DeviceSpec.AUTO_ID",
                        res);
            case Errno.ENODEV:
            case Errno.ENOENT:
                return new UbdNoSuchDeviceException(
                        what + " failed: " + errno + ". There is no such device " + "(list them with listDevices)",
                        res);
            case Errno.EOPNOTSUPP:
            case Errno.ENOSYS:
            case 25 /* ENOTTY */:
                return new UbdUnsupportedException(
                        what + " is not supported by this kernel: " + errno + ". It needs a newer ublk driver", res);
            case Errno.EINTR:
            case Errno.ECANCELED:
                return new UbdTimeoutException(what + " was interrupted: " + errno, res);
            case Errno.EINVAL:
                if (nr == UblkCtrlCmd.NR_START_USER_RECOVERY) {
                    // Linux before 6.15 resets a device's queues only when a recovery starts, and then wants a ready
                    // one: a recovery whose server died before any of its queues was ready leaves none.
                    return new UbdDeviceStateException(
                            what + " was refused as invalid: " + errno + ". The device "
                                    + "was added without USER_RECOVERY, or (Linux before 6.15) an earlier recovery's server "
                                    + "died before any of its queues was ready, after which this kernel takes the device "
                                    + "over no more: remove it (removeDeviceAsync, or `ubd remove --async`, while IO waits on it) and add "
                                    + "it again",
                            res);
                }
                return new UbdException(
                        what + " was refused as invalid: " + errno + ". The kernel rejected the "
                                + "arguments (a parameter out of its limits, a device in the wrong state for this "
                                + "command, or a feature combination it forbids)",
                        res);
            default:
                return new UbdException(what + " failed: " + errno, res);
        }
    }

    @Override
    public String toString() {
        return "UbdControl[fd=" + fd + ", timeout=" + timeout + ", " + ring + "]";
    }
}

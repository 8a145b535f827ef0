package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.io.KernelQueueTransport;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.uring.Libc;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;
import reactor.util.retry.Retry;

/**
 * A ublk device served by this process: its id, its queues, and its lifecycle.
 *
 * <h2>Lifecycle</h2>
 * {@link UbdServer} adds the device, opens its queues (every tag fetched) and, for {@link UbdServer#serve}, starts
 * it. With {@link UbdServer#open} the caller subscribes to {@link #queues()} and then calls {@link #start()}.
 * {@link #close()} (or {@link #dispose()}) stops the device (the kernel drains in-flight IO and removes
 * {@code /dev/ublkbN}), waits for every queue to end, releases the queues' fds and mappings, and deletes the
 * device. Every step is bounded by the control handle's timeout. If a backend still holds requests when the
 * bound runs out, close() fails with {@link UbdTimeoutException} but the queues stay connected and the device
 * finishes closing by itself once the requests are answered ({@link #onClose()} completes then). Closing twice
 * returns the same Mono.
 *
 * <p>Unmount any filesystem on the device before closing it: the kernel waits for every opener of the block device.
 *
 * <h2>Resize and hand-over</h2>
 * {@link #resize(long)} changes the size of the live device (UPDATE_SIZE, Linux 6.16+), within what the backend
 * stores. {@link #quiesce()} (QUIESCE_DEV, Linux 6.16+, a device added with USER_RECOVERY and QUIESCE) lets the
 * requests in flight finish and releases the device without deleting it, for {@link UbdServer#recover} in this or
 * another process to take over: a live upgrade of the server.
 */
public final class UbdDevice implements Disposable {
    private static final Logger LOG = LoggerFactory.getLogger(UbdDevice.class);
    private final UbdControl control;
    private final DeviceInfo info;
    private final List<UbdQueue> queues;
    private final List<KernelQueueTransport> transports;
    private final int charFd;
    private final Runnable onClosed;
    private final AtomicBoolean closing = new AtomicBoolean();
    private final Sinks.Empty<Void> closed = Sinks.empty();
    private final List<Disposable> bridges = new CopyOnWriteArrayList<>();
    private final Mono<Void> closeMono;
    private final Mono<Void> quiesceMono;
    private final AtomicBoolean quiescing = new AtomicBoolean();
    private volatile boolean handedOver;
    /** The backend served, whose size bounds {@link #resize} at the moment of the call (an RBD image grows). */
    private volatile BlockBackend servedBackend;

    UbdDevice(
            UbdControl control,
            DeviceInfo info,
            List<UbdQueue> queues,
            List<KernelQueueTransport> transports,
            int charFd,
            Runnable onClosed) {
        this.control = control;
        this.info = info;
        this.queues = List.copyOf(queues);
        this.transports = List.copyOf(transports);
        this.charFd = charFd;
        this.onClosed = onClosed;
        this.closeMono = Mono.defer(this::doClose).cache();
        this.quiesceMono = Mono.defer(this::doQuiesce).cache();
    }

    /** Remembers the backend, whose size bounds {@link #resize}. */
    void servedBy(BlockBackend backend) {
        this.servedBackend = backend;
    }

    /** {@return the device id N of {@code /dev/ublkbN}} */
    public int id() {
        return info.id();
    }

    /** {@return the negotiated device info, as ADD_DEV returned it} */
    public DeviceInfo info() {
        return info;
    }

    /** {@return {@code /dev/ublkbN}} */
    public String blockDevicePath() {
        return info.blockDevicePath();
    }

    /** {@return the queues, one per hardware queue the kernel granted} */
    public List<UbdQueue> queues() {
        return queues;
    }

    /**
     * One of the device's queues.
     *
     * @param id the queue id, from 0 to the number of queues - 1
     * @return the queue
     */
    public UbdQueue queue(int id) {
        return queues.get(id);
    }

    void addBridge(Disposable d) {
        bridges.add(d);
    }

    /**
     * Starts the device (START_DEV). Completes once {@code /dev/ublkbN} exists; the kernel scans it for partitions
     * first, which reads through the queues, so their requests must be consumed by then.
     *
     * @return a Mono that completes once the device is live, or signals the kernel's refusal as a {@link
     *         dev.reactorubd.UbdException}
     */
    public Mono<Void> start() {
        return control.startDevice(info.id());
    }

    /**
     * Changes the size of the live device to {@code bytes} (UPDATE_SIZE): {@code /dev/ublkbN} and its sysfs size
     * change at once, and the kernel sends a RESIZE uevent. The data below both sizes stays; requests beyond the old
     * end reach the backend from then on.
     *
     * <p>Refused before anything is sent to the kernel:
     * <ul>
     *   <li>{@link UbdException} with errno EINVAL when {@code bytes} is not a positive multiple of the logical block
     *   size, or is larger than the backend's {@link BlockBackend#size()} at the time of the call (when it knows it):
     *   most backends do not grow (an RBD image resized in its cluster does), so serve a larger one (a larger file, a memory backend created with the largest size wanted and a
     *   smaller {@code DeviceSpec.capacityBytes}) and resize within it;</li>
     *   <li>{@link UbdUnsupportedException} when the kernel has no UPDATE_SIZE (before Linux 6.16), so that the device
     *   was added without it;</li>
     *   <li>{@link UbdDeviceStateException} when the device is not started, is closing or was quiesced and released
     *   (the kernel must not get UPDATE_SIZE for a device without a disk).</li>
     * </ul>
     *
     * @param bytes the new size in bytes
     * @return a Mono that completes once the device has the new size
     */
    public Mono<Void> resize(long bytes) {
        return Mono.defer(() -> {
            if (closing.get() || quiescing.get()) {
                return Mono.error(new UbdDeviceStateException("device " + info.id() + " is "
                        + (quiescing.get() ? "quiesced" : "closing") + ": a device can only be resized while this "
                        + "server serves it"));
            }
            BlockBackend b = servedBackend;
            UbdException refusal = checkBackendSize(info.id(), b == null ? BlockBackend.UNKNOWN_SIZE : b.size(), bytes);
            return refusal != null
                    ? Mono.error(refusal)
                    : control.updateSize(info.id(), bytes)
                            .doOnSuccess(v -> LOG.info("device {} resized to {} bytes", info.id(), bytes));
        });
    }

    /**
     * Why a backend of {@code backendSize} bytes cannot serve a device of {@code bytes}, or null when it can.
     *
     * @param devId the device id, for the message
     * @param backendSize the backend's size, or {@link BlockBackend#UNKNOWN_SIZE}
     * @param bytes the size asked for
     * @return the refusal, or null
     */
    static UbdException checkBackendSize(int devId, long backendSize, long bytes) {
        if (bytes <= 0) {
            return new UbdException(
                    "device " + devId + " cannot be resized to " + bytes + " bytes: give a positive " + "size",
                    Errno.EINVAL);
        }
        if (backendSize != BlockBackend.UNKNOWN_SIZE && bytes > backendSize) {
            return new UbdException(
                    "device " + devId + " cannot be resized to " + bytes + " bytes: its backend "
                            + "stores " + backendSize
                            + " bytes and does not grow. Resize within that, or serve a larger "
                            + "backend (a larger file; a memory backend created with the largest size wanted)",
                    Errno.EINVAL);
        }
        return null;
    }

    /**
     * Quiesces the device and lets it go without deleting it, so that another server takes it over: a live upgrade.
     * The kernel stops sending requests (new ones wait in the kernel, or fail with
     * {@link UblkFeature#USER_RECOVERY_FAIL_IO}); the requests the backend holds are answered; then the queues end,
     * the backend is let go (not closed: it is the caller's) and {@code /dev/ublkcN} is closed and unmapped. The Mono
     * completes once the kernel reports the device QUIESCED (or FAIL_IO): {@link UbdServer#recover} in this process,
     * or {@code ubd recover} in another, can take it over at once, and IO that waited meanwhile is then served. The
     * device is no longer this server's: {@link #close()} then does nothing. Idempotent: every call returns the same
     * Mono.
     *
     * <p>Needs a device added with {@link UblkFeature#USER_RECOVERY} and {@link UblkFeature#QUIESCE} (Linux 6.16+):
     * otherwise it fails with {@link UbdUnsupportedException} and the device keeps being served. A device that is
     * closing fails with {@link UbdDeviceStateException}. Each step is bounded by the control timeout; when a backend
     * holds requests beyond it, the Mono fails with {@link UbdTimeoutException} and the device stays this server's
     * but takes no new requests: {@link #close()} stops and deletes it.
     *
     * @return a Mono that completes once the device waits for a new server
     */
    public Mono<Void> quiesce() {
        return quiesceMono;
    }

    private Mono<Void> doQuiesce() {
        if (closing.get()) {
            return Mono.error(new UbdDeviceStateException(
                    "device " + info.id() + " is closing: it cannot be " + "handed over any more"));
        }
        if (!info.has(UblkFeature.QUIESCE) || !info.has(UblkFeature.USER_RECOVERY)) {
            return Mono.error(new UbdUnsupportedException("device " + info.id() + " was added without "
                    + (info.has(UblkFeature.USER_RECOVERY) ? "QUIESCE" : "USER_RECOVERY and QUIESCE") + ", so it "
                    + "cannot be quiesced and handed over: add it with DeviceSpec features USER_RECOVERY and QUIESCE "
                    + "(Linux " + UblkFeature.QUIESCE.since() + "+); it is still served"));
        }
        quiescing.set(true);
        Duration bound = control.timeout();
        // On 6.18 one QUIESCE_DEV completes the fetches of idle tags only; a request the backend still held parks a
        // new fetch when it is answered, which only the next QUIESCE_DEV completes. So quiesce again until every tag
        // of every queue has been given back (each queue then ends), within the control timeout.
        Mono<Void> allEnded = Flux.fromIterable(queues)
                .flatMap(q -> q.onTerminated().onErrorResume(e -> Mono.empty()))
                .then();
        AtomicInteger rounds = new AtomicInteger();
        return control.quiesceDevice(info.id(), bound)
                .doOnSubscribe(s -> rounds.incrementAndGet())
                .then(allEnded.timeout(QUIESCE_ROUND))
                .retryWhen(Retry.fixedDelay(
                                Math.max(1, bound.toMillis() / QUIESCE_ROUND.toMillis()), Duration.ofMillis(1))
                        .filter(TimeoutException.class::isInstance)
                        .onRetryExhaustedThrow((spec, signal) -> new UbdTimeoutException(
                                "device " + info.id()
                                        + " was quiesced, but its backend still held requests after " + bound + " ("
                                        + queues.stream()
                                                .mapToInt(UbdQueue::inFlightCount)
                                                .sum() + " in flight). It takes "
                                        + "no new requests; close() stops and deletes it",
                                Errno.ETIMEDOUT)))
                .then(Mono.defer(this::releaseQueues))
                .then(Mono.defer(this::awaitReleased))
                .doOnSuccess(v -> {
                    handedOver = true;
                    queues.forEach(q -> q.metrics().close());
                    onClosed.run();
                    LOG.info(
                            "device {} quiesced ({} QUIESCE_DEV) and released after {} requests: take it over "
                                    + "with UbdServer.recover or `ubd recover --id {}`",
                            info.id(),
                            rounds.get(),
                            queues.stream()
                                    .mapToLong(q -> q.completedCount() + q.failedCount())
                                    .sum(),
                            info.id());
                    closed.tryEmitEmpty();
                })
                .doOnError(e -> {
                    if (!released.get()) {
                        quiescing.set(false); // still served (but canceling, in the kernel): close() may stop it
                    }
                });
    }

    /** Waits, within the control timeout, until the kernel has let go of the char device (LIVE becomes QUIESCED). */
    private Mono<Void> awaitReleased() {
        return control.deviceInfo(info.id())
                .flatMap(i -> i.state() == UblkDevState.LIVE ? Mono.error(new StillLive()) : Mono.<Void>empty())
                .retryWhen(Retry.fixedDelay(Math.max(1, control.timeout().toMillis() / 50), Duration.ofMillis(50))
                        .filter(StillLive.class::isInstance)
                        .onRetryExhaustedThrow((spec, signal) -> new UbdTimeoutException(
                                "device " + info.id()
                                        + " was released but still LIVE after " + control.timeout()
                                        + ": a process still "
                                        + "holds /dev/ublkc" + info.id(),
                                Errno.ETIMEDOUT)));
    }

    private static final Duration QUIESCE_ROUND = Duration.ofMillis(250);

    private static final class StillLive extends RuntimeException {
        private static final long serialVersionUID = 1L;

        StillLive() {
            super(null, null, false, false);
        }
    }

    /**
     * Stops, drains and deletes the device; see the class comment. Idempotent.
     *
     * @return the same Mono on every call: it completes once the device is deleted, or signals a {@link
     *         UbdTimeoutException} when a bound ran out
     */
    public Mono<Void> close() {
        return closeMono;
    }

    /**
     * Completes when the device was deleted (or failed to be).
     *
     * @return a Mono that completes when the device is deleted, or signals why closing failed
     */
    public Mono<Void> onClose() {
        return closed.asMono();
    }

    private Mono<Void> doClose() {
        if (quiescing.get()) {
            // A hand-over under way: once done the device is the next server's; if it failed, stop it here.
            return quiesceMono
                    .onErrorResume(e -> Mono.empty())
                    .then(Mono.defer(() -> handedOver ? Mono.empty() : doStop()));
        }
        return doStop();
    }

    private Mono<Void> doStop() {
        closing.set(true);
        return stopAndDrain()
                .onErrorResume(e -> {
                    finishInBackground();
                    return Mono.error(e);
                })
                .then(Mono.defer(this::releaseAndDelete));
    }

    /** STOP_DEV, then every queue ended; each bounded by the control timeout. */
    private Mono<Void> stopAndDrain() {
        return control.stopDevice(info.id())
                .then(Flux.fromIterable(queues)
                        .flatMap(UbdQueue::onTerminated)
                        .then()
                        .timeout(
                                control.timeout(),
                                Mono.error(() -> new UbdTimeoutException("the queues of device "
                                        + info.id() + " did not end within " + control.timeout()
                                        + " of STOP_DEV: a backend "
                                        + "still holds requests. The device finishes closing by itself once they are "
                                        + "answered; onClose() tells when"))));
    }

    private Mono<Void> releaseAndDelete() {
        return releaseQueues()
                .then(control.deleteDevice(info.id()))
                // Before the caller hears of it: a closed device is no longer among the server's devices.
                .doOnTerminate(onClosed)
                .doOnCancel(onClosed)
                .doOnTerminate(() -> queues.forEach(q -> q.metrics().close()))
                .doOnSuccess(v -> {
                    LOG.info(
                            "device {} stopped and deleted after {} requests ({} failed, {} zero-copy)",
                            info.id(),
                            queues.stream().mapToLong(UbdQueue::completedCount).sum()
                                    + queues.stream()
                                            .mapToLong(UbdQueue::failedCount)
                                            .sum(),
                            queues.stream().mapToLong(UbdQueue::failedCount).sum(),
                            queues.stream().mapToLong(UbdQueue::zeroCopyCount).sum());
                    closed.tryEmitEmpty();
                })
                .doOnError(closed::tryEmitError);
    }

    /**
     * After close() gave up waiting (a backend still holds requests), keeps trying to stop and drain, with backoff,
     * for up to about ten minutes, then releases and deletes the device. The queues stay connected meanwhile, so
     * that late answers still reach the kernel and the stop can finish.
     */
    private void finishInBackground() {
        stopAndDrain()
                .retryWhen(Retry.backoff(20, Duration.ofSeconds(1))
                        .maxBackoff(Duration.ofSeconds(30))
                        .filter(UbdTimeoutException.class::isInstance))
                .then(Mono.defer(this::releaseAndDelete))
                .subscribe(
                        null,
                        e -> releaseQueues()
                                .doFinally(signal -> {
                                    closed.tryEmitError(e);
                                    onClosed.run();
                                })
                                .subscribe(null, x -> {}));
    }

    private final AtomicBoolean released = new AtomicBoolean();

    /**
     * Disconnects the backends, shuts the transports down on their loops (which unmaps the descriptor areas) and
     * closes the char device. Safe whether or not the queues ended: after a timeout the device can still be removed
     * once the kernel lets go ({@code UbdControl.removeDevice}), since nothing of this process holds it.
     */
    private Mono<Void> releaseQueues() {
        if (!released.compareAndSet(false, true)) {
            return Mono.empty();
        }
        bridges.forEach(Disposable::dispose);
        bridges.clear(); // a closed device's handle keeps nothing of its backend
        servedBackend = null;
        return Flux.fromIterable(transports)
                .flatMap(KernelQueueTransport::shutdown)
                .then(Mono.fromRunnable(() -> Libc.close(charFd))
                        .subscribeOn(Schedulers.boundedElastic())
                        .then());
    }

    /** Starts {@link #close()} without waiting; see {@link #onClose()}. */
    @Override
    public void dispose() {
        close().subscribe(null, e -> {});
    }

    @Override
    public boolean isDisposed() {
        return closing.get() || handedOver;
    }

    @Override
    public String toString() {
        return "UbdDevice[" + blockDevicePath() + ", queues=" + info.queues() + ", depth=" + info.depth() + "]";
    }
}

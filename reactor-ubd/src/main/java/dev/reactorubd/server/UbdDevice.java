package dev.reactorubd.server;

import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.io.KernelQueueTransport;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.uring.Libc;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
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
    private final List<Disposable> bridges = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final Mono<Void> closeMono;

    UbdDevice(UbdControl control, DeviceInfo info, List<UbdQueue> queues, List<KernelQueueTransport> transports,
              int charFd, Runnable onClosed) {
        this.control = control;
        this.info = info;
        this.queues = List.copyOf(queues);
        this.transports = List.copyOf(transports);
        this.charFd = charFd;
        this.onClosed = onClosed;
        this.closeMono = Mono.defer(this::doClose).cache();
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
                .then(Flux.fromIterable(queues).flatMap(UbdQueue::onTerminated).then()
                        .timeout(control.timeout(), Mono.error(() -> new UbdTimeoutException("the queues of device "
                                + info.id() + " did not end within " + control.timeout() + " of STOP_DEV: a backend "
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
                    LOG.info("device {} stopped and deleted after {} requests ({} failed, {} zero-copy)", info.id(),
                            queues.stream().mapToLong(UbdQueue::completedCount).sum()
                                    + queues.stream().mapToLong(UbdQueue::failedCount).sum(),
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
                .retryWhen(Retry.backoff(20, Duration.ofSeconds(1)).maxBackoff(Duration.ofSeconds(30))
                        .filter(UbdTimeoutException.class::isInstance))
                .then(Mono.defer(this::releaseAndDelete))
                .subscribe(null, e -> releaseQueues().doFinally(signal -> {
                    closed.tryEmitError(e);
                    onClosed.run();
                }).subscribe(null, x -> { }));
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
        return Flux.fromIterable(transports).flatMap(KernelQueueTransport::shutdown).then(
                Mono.fromRunnable(() -> Libc.close(charFd)).subscribeOn(Schedulers.boundedElastic()).then());
    }

    /** Starts {@link #close()} without waiting; see {@link #onClose()}. */
    @Override
    public void dispose() {
        close().subscribe(null, e -> { });
    }

    @Override
    public boolean isDisposed() {
        return closing.get();
    }

    @Override
    public String toString() {
        return "UbdDevice[" + blockDevicePath() + ", queues=" + info.queues() + ", depth=" + info.depth() + "]";
    }
}

package dev.reactorubd.server;

import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.io.KernelQueueTransport;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.uring.Libc;
import dev.reactorubd.uring.MappedRegion;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * A ublk device served by this process: its id, its queues, and its lifecycle.
 *
 * <h2>Lifecycle</h2>
 * {@link UbdServer} adds the device, opens its queues (every tag fetched) and, for {@link UbdServer#serve}, starts
 * it. With {@link UbdServer#open} the caller subscribes to {@link #queues()} and then calls {@link #start()}.
 * {@link #close()} (or {@link #dispose()}) stops the device (the kernel drains in-flight IO and removes
 * {@code /dev/ublkbN}), waits for every queue to end, releases the queues' fds and mappings, and deletes the
 * device. Every step is bounded by the control handle's timeout. Closing twice returns the same Mono.
 *
 * <p>Unmount any filesystem on the device before closing it: the kernel waits for every opener of the block device.
 */
public final class UbdDevice implements Disposable {
    private final UbdControl control;
    private final DeviceInfo info;
    private final List<UbdQueue> queues;
    private final List<KernelQueueTransport> transports;
    private final List<MappedRegion> descriptorAreas;
    private final int charFd;
    private final Runnable onClosed;
    private final AtomicBoolean closing = new AtomicBoolean();
    private final Sinks.Empty<Void> closed = Sinks.empty();
    private final List<Disposable> bridges = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final Mono<Void> closeMono;

    UbdDevice(UbdControl control, DeviceInfo info, List<UbdQueue> queues, List<KernelQueueTransport> transports,
              List<MappedRegion> descriptorAreas, int charFd, Runnable onClosed) {
        this.control = control;
        this.info = info;
        this.queues = List.copyOf(queues);
        this.transports = List.copyOf(transports);
        this.descriptorAreas = List.copyOf(descriptorAreas);
        this.charFd = charFd;
        this.onClosed = onClosed;
        this.closeMono = Mono.defer(this::doClose).cache();
    }

    /** The device id N of {@code /dev/ublkbN}. */
    public int id() {
        return info.id();
    }

    /** The negotiated device info, as ADD_DEV returned it. */
    public DeviceInfo info() {
        return info;
    }

    /** {@code /dev/ublkbN}. */
    public String blockDevicePath() {
        return info.blockDevicePath();
    }

    /** The queues, one per hardware queue the kernel granted. */
    public List<UbdQueue> queues() {
        return queues;
    }

    public UbdQueue queue(int id) {
        return queues.get(id);
    }

    void addBridge(Disposable d) {
        bridges.add(d);
    }

    /**
     * Starts the device (START_DEV). Completes once {@code /dev/ublkbN} exists; the kernel scans it for partitions
     * first, which reads through the queues, so their requests must be consumed by then.
     */
    public Mono<Void> start() {
        return control.startDevice(info.id());
    }

    /** Stops, drains and deletes the device; see the class comment. Idempotent. */
    public Mono<Void> close() {
        return closeMono;
    }

    /** Completes when the device was deleted (or failed to be). */
    public Mono<Void> onClose() {
        return closed.asMono();
    }

    private Mono<Void> doClose() {
        closing.set(true);
        Mono<Void> drained = Flux.fromIterable(queues).flatMap(UbdQueue::onTerminated).then()
                .timeout(control.timeout(), Mono.error(() -> new UbdTimeoutException("the queues of device "
                        + info.id() + " did not end within " + control.timeout() + " after STOP_DEV: a backend "
                        + "still holds requests")));
        return control.stopDevice(info.id())
                .then(drained)
                .onErrorResume(e -> releaseQueues(false).then(Mono.error(e)))
                .then(releaseQueues(true))
                .then(control.deleteDevice(info.id()))
                .doOnTerminate(() -> {
                    onClosed.run();
                })
                .doOnSuccess(v -> closed.tryEmitEmpty())
                .doOnError(closed::tryEmitError);
    }

    private final AtomicBoolean released = new AtomicBoolean();

    /**
     * Unregisters the transports and closes the char device, off the event loops. The descriptor areas are
     * unmapped only when every queue ended: a queue that may still see a completion reads them, and a leaked
     * mapping beats a crash.
     */
    private Mono<Void> releaseQueues(boolean drained) {
        return Mono.fromRunnable(() -> {
            if (!released.compareAndSet(false, true)) {
                return;
            }
            bridges.forEach(Disposable::dispose);
            for (int i = 0; i < transports.size(); i++) {
                KernelQueueTransport t = transports.get(i);
                queues.get(i).loop().execute(t::close);
            }
            if (drained) {
                descriptorAreas.forEach(MappedRegion::close);
            }
            Libc.close(charFd);
        }).subscribeOn(Schedulers.boundedElastic()).then();
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

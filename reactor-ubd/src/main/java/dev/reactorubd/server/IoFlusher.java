package dev.reactorubd.server;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.io.LoopScheduler;
import dev.reactorubd.uring.Libc;
import io.netty.util.concurrent.EventExecutor;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;

/**
 * The IO_FLUSHER state ({@code prctl(PR_SET_IO_FLUSHER)}, Linux 5.6+) of the threads that serve queues.
 *
 * <p>A thread that serves a block device takes part in writeback: when the machine is short of memory, the kernel
 * frees page cache by writing dirty pages to devices, among them the ones this process serves. If the serving thread
 * then needs memory itself, the kernel may try to free it by the same writeback, which waits for this thread: a
 * deadlock. IO_FLUSHER makes the kernel treat the thread as part of the IO path: its allocations never start IO to
 * reclaim memory ({@code PF_MEMALLOC_NOIO}) and its own writes are throttled only against its own dirty pages
 * ({@code PF_LOCAL_THROTTLE}). It is what ublksrv (and the kernel's FUSE and loop advice) does for its queue threads.
 * Threads the kernel creates for the thread later (its io_uring io-wq workers, {@code iou-wrk-TID}) inherit it, and so
 * does every thread the thread starts: the kernel copies the state into a new thread, so a pool whose worker (or an
 * event loop whose thread) is first started from a queue thread is an IO flusher as well, whatever
 * {@link UbdServer.Builder#ioFlusher(boolean)} says.
 *
 * <p>{@link UbdServer} calls {@link #enableOnCurrentThread()} on every event loop thread before it registers the first
 * queue there (the server's own loops and the caller's alike), unless {@link UbdServer.Builder#ioFlusher(boolean)}
 * turns it off. A backend that does work on threads of its own (a pool for blocking IO, say) should call it on those
 * threads too.
 *
 * <p>The kernel needs CAP_SYS_RESOURCE for it. Without it the call fails with EPERM: the thread keeps working, a
 * WARN says once per process what to do, and devices are served as before (exposed to the deadlock above under
 * memory pressure). The state is the thread's, lasts as long as the thread, and is not undone when a queue closes.
 */
public final class IoFlusher {
    private static final Logger LOG = LoggerFactory.getLogger(IoFlusher.class);
    private static final AtomicBoolean WARNED = new AtomicBoolean();
    /** Per thread, the outcome of its one PR_SET_IO_FLUSHER: null until tried. */
    private static final ThreadLocal<Boolean> SET = new ThreadLocal<>();

    private IoFlusher() {}

    /**
     * Puts the calling thread in IO_FLUSHER state, once per thread: later calls on the same thread return the first
     * call's outcome without a system call. Never blocks (one {@code prctl}); never throws for a refusal.
     *
     * @return whether the thread is now an IO flusher; false when the kernel refused (a WARN, once per process, says
     *         why and what to do)
     */
    public static boolean enableOnCurrentThread() {
        Boolean done = SET.get();
        if (done != null) {
            return done;
        }
        int r = Libc.prctl(Libc.PR_SET_IO_FLUSHER, 1, 0, 0, 0);
        boolean ok = r >= 0;
        SET.set(ok);
        if (ok) {
            LOG.debug("thread {} is in IO_FLUSHER state", Thread.currentThread().getName());
        } else if (WARNED.compareAndSet(false, true)) {
            LOG.warn(
                    "queue thread {} is not in IO_FLUSHER state: prctl(PR_SET_IO_FLUSHER) answered {}{}. Devices are "
                            + "served anyway, but under memory pressure the writeback to them can deadlock the machine (the "
                            + "server may wait for memory that only that writeback frees). {} (Said once per process.)",
                    Thread.currentThread().getName(),
                    Errno.describe(-r),
                    r == -Errno.EINVAL ? ": the kernel has no PR_SET_IO_FLUSHER (Linux 5.6+)" : "",
                    r == -Errno.EPERM
                            ? "Give the process CAP_SYS_RESOURCE: run it as root, or with systemd "
                                    + "AmbientCapabilities=CAP_SYS_RESOURCE, or setcap cap_sys_resource+ep on the java binary."
                            : "Run it on Linux 5.6+ with CAP_SYS_RESOURCE.");
        }
        return ok;
    }

    /**
     * Asks the kernel whether the calling thread is in IO_FLUSHER state ({@code prctl(PR_GET_IO_FLUSHER)}, which
     * also needs CAP_SYS_RESOURCE). Never blocks.
     *
     * @return whether the calling thread is an IO flusher
     * @throws UbdPermissionException EPERM, when the process lacks CAP_SYS_RESOURCE
     * @throws UbdException any other refusal, with its errno
     */
    public static boolean isSetOnCurrentThread() {
        int r = Libc.prctl(Libc.PR_GET_IO_FLUSHER, 0, 0, 0, 0);
        if (r == -Errno.EPERM) {
            throw new UbdPermissionException(
                    "cannot ask whether thread " + Thread.currentThread().getName()
                            + " is an IO flusher: prctl(PR_GET_IO_FLUSHER) needs CAP_SYS_RESOURCE",
                    Errno.EPERM);
        }
        if (r < 0) {
            throw new UbdException(
                    "prctl(PR_GET_IO_FLUSHER) failed on thread "
                            + Thread.currentThread().getName() + ": " + Errno.describe(-r) + " (Linux 5.6+ has it)",
                    r);
        }
        return r == 1;
    }

    /**
     * Asks whether {@code loop}'s thread is in IO_FLUSHER state: {@link #isSetOnCurrentThread()} run on that loop (at
     * once when called from it). For checking a server's queue threads: {@code IoFlusher.isSet(queue.loop())}.
     *
     * @param loop an event loop, such as a queue's {@link dev.reactorubd.io.UbdQueue#loop()}
     * @return a Mono of the answer, signalled on the loop; it errors as {@link #isSetOnCurrentThread()} throws, or
     *         with a {@link java.util.concurrent.RejectedExecutionException} when the loop is shut down
     */
    public static Mono<Boolean> isSet(EventExecutor loop) {
        Objects.requireNonNull(loop, "loop");
        return Mono.fromCallable(IoFlusher::isSetOnCurrentThread).subscribeOn(new LoopScheduler(loop));
    }

    /**
     * Runs {@link #enableOnCurrentThread()} on {@code loop}.
     *
     * @return a Mono of its outcome, signalled on the loop
     */
    static Mono<Boolean> enable(EventExecutor loop) {
        return Mono.fromCallable(IoFlusher::enableOnCurrentThread).subscribeOn(new LoopScheduler(loop));
    }
}

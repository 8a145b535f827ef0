package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.compose.MirrorBackend.Member;
import dev.reactorubd.targets.compose.MirrorBackend.Seat;
import dev.reactorubd.targets.compose.MirrorBackend.SourceFailure;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import reactor.core.Disposable;
import reactor.core.publisher.SignalType;
import reactor.core.publisher.Sinks;

/** The background copy of one reinstated replica's dirty regions; its steps run one after the other. */
final class MirrorResync {
    final MirrorState s;
    final int r;
    /** The replica it copies to: a replace of its slot ends this resync. */
    final Member target;

    final Sinks.Empty<Void> done = Sinks.empty();
    long cursor;
    long copied;
    /** The timer of the next step, or the copy in flight: what {@link #cancel} stops. */
    volatile Disposable pending;

    volatile boolean cancelled;

    MirrorResync(MirrorState s, Member target) {
        this.s = s;
        this.r = target.slot;
        this.target = target;
        s.running.add(this);
        done.asMono().doFinally(sig -> s.running.remove(this)).subscribe(null, e -> {});
    }

    void schedule(long delayMillis) {
        MirrorBackend view = s.driver();
        try {
            pending = view.timers().schedule(() -> step(view), delayMillis, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
            // The view's loop is gone (its device stopped): continue with another view, or the unbound mirror.
            if (view != s.unbound) {
                s.views.remove(view);
                schedule(delayMillis);
            } else {
                abort("the resync could not be scheduled: " + e);
            }
        }
    }

    void cancel() {
        cancel("the mirror was closed during the resync of replica " + r);
    }

    void cancel(String why) {
        cancelled = true;
        Disposable d = pending;
        if (d != null) {
            d.dispose();
        }
        done.tryEmitError(Support.ioError(Errno.ECANCELED, why));
    }

    private void abort(String reason) {
        s.fail(target, reason);
        done.tryEmitError(Support.ioError(Errno.EIO, "resync of replica " + r + " failed: " + reason));
    }

    private void step(MirrorBackend view) {
        if (s.closed) {
            return;
        }
        if (view != s.driver()) {
            // Its queue ended since this step was scheduled: its bound replicas may be gone.
            schedule(0);
            return;
        }
        long dstState = s.states.get(r);
        if (MirrorState.stateOf(dstState) != ReplicaState.RESYNCING
                || s.resyncs.get(r) != this
                || s.members.get(r) != target) {
            done.tryEmitError(Support.ioError(Errno.EIO, "replica " + r + " failed again during its resync"));
            return;
        }
        int src = s.pickSource(r);
        if (src < 0) {
            abort("no in-sync replica to copy from");
            return;
        }
        long region = target.dirty.next(cursor);
        if (region < 0) {
            if (s.finishResync(r, copied)) {
                done.tryEmitEmpty();
                return;
            }
            // Regions with writes in flight, or writes that skipped the replica, are left: look again shortly.
            cursor = 0;
            schedule(1);
            return;
        }
        cursor = region + 1;
        long generation = s.writes.snapshot(region);
        if (generation < 0) {
            schedule(0);
            return;
        }
        long srcState = s.states.get(src);
        Seat from = MirrorState.stateOf(srcState) == ReplicaState.IN_SYNC ? view.enter(src, srcState) : null;
        if (from == null) {
            cursor = region;
            schedule(0); // the source changed state meanwhile: pick again
            return;
        }
        Seat to = view.enter(r, dstState);
        if (to == null) {
            from.member().exit();
            schedule(0); // this replica changed state meanwhile: the next step sees how
            return;
        }
        target.copying.incrementAndGet();
        target.dirty.clear(region);
        // Kept, so that a close stops it: its buffer is released then, even when a replica never answers.
        Disposable copying = view.copy(from, to, region)
                .doFinally(sig -> {
                    from.member().exit();
                    to.member().exit();
                    if (sig == SignalType.CANCEL) {
                        target.copying.decrementAndGet(); // closed, or replaced: nothing of this replica matters
                    }
                })
                .subscribe(
                        null,
                        e -> {
                            target.dirty.mark(region, region);
                            target.copying.decrementAndGet();
                            if (e instanceof SourceFailure f) {
                                s.fail(
                                        from.member(),
                                        "read failed while resyncing replica " + r + ": "
                                                + Support.describe(f.getCause()));
                                schedule(0);
                            } else {
                                abort("write of region " + region + " failed: " + Support.describe(e));
                            }
                        },
                        () -> {
                            if (s.writes.unchanged(region, generation)) {
                                copied++;
                                s.copied.incrementAndGet();
                            } else {
                                // Written while it was copied: what was copied may be older than what the replica
                                // got.
                                target.dirty.mark(region, region);
                            }
                            target.copying.decrementAndGet();
                            schedule(0);
                        });
        if (!copying.isDisposed()) { // else it ended already, and pending is the next step's timer
            pending = copying;
            if (cancelled) {
                copying.dispose(); // cancelled while it was being started
            }
        }
    }
}

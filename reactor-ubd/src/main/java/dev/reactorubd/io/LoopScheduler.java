package dev.reactorubd.io;

import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import reactor.core.Disposable;
import reactor.core.Disposables;
import reactor.core.scheduler.Scheduler;

/**
 * A Reactor {@link Scheduler} on one Netty event loop: tasks scheduled from the loop itself run at once, in the
 * caller (no hop); tasks from other threads are queued to the loop. A queue's answers travel through it, so that
 * answers given on the loop cost no extra turn.
 */
public final class LoopScheduler implements Scheduler {
    private final EventExecutor loop;

    /**
     * A scheduler whose workers all run on {@code loop}; tasks submitted from the loop itself run at once.
     *
     * @param loop the event loop
     */
    public LoopScheduler(EventExecutor loop) {
        this.loop = loop;
    }

    /** {@return the event loop} */
    public EventExecutor loop() {
        return loop;
    }

    @Override
    public Disposable schedule(Runnable task) {
        if (loop.inEventLoop()) {
            task.run();
            return Disposables.disposed();
        }
        return wrap(loop.submit(task));
    }

    @Override
    public Disposable schedule(Runnable task, long delay, TimeUnit unit) {
        return wrap(loop.schedule(task, delay, unit));
    }

    @Override
    public Disposable schedulePeriodically(Runnable task, long initialDelay, long period, TimeUnit unit) {
        return wrap(loop.scheduleAtFixedRate(task, initialDelay, period, unit));
    }

    private static Disposable wrap(Future<?> f) {
        return new Disposable() {
            @Override
            public void dispose() {
                f.cancel(false);
            }

            @Override
            public boolean isDisposed() {
                return f.isDone();
            }
        };
    }

    @Override
    public Worker createWorker() {
        Disposable.Composite tasks = Disposables.composite();
        return new Worker() {
            @Override
            public Disposable schedule(Runnable task) {
                if (tasks.isDisposed()) {
                    throw new RejectedExecutionException("worker disposed");
                }
                return track(LoopScheduler.this.schedule(task));
            }

            @Override
            public Disposable schedule(Runnable task, long delay, TimeUnit unit) {
                return track(LoopScheduler.this.schedule(task, delay, unit));
            }

            @Override
            public Disposable schedulePeriodically(Runnable task, long initialDelay, long period, TimeUnit unit) {
                return track(LoopScheduler.this.schedulePeriodically(task, initialDelay, period, unit));
            }

            private Disposable track(Disposable d) {
                if (!d.isDisposed()) {
                    tasks.add(d);
                }
                return d;
            }

            @Override
            public void dispose() {
                tasks.dispose();
            }

            @Override
            public boolean isDisposed() {
                return tasks.isDisposed();
            }
        };
    }

    @Override
    public void dispose() {
        // The loop belongs to its group; disposing this view of it does nothing.
    }

    @Override
    public String toString() {
        return "LoopScheduler[" + loop + "]";
    }
}

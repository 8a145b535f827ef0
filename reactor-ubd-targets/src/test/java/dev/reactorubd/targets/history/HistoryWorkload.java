package dev.reactorubd.targets.history;

import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * A seeded random mix of concurrent reads, writes and flushes over a device, every read checked against the {@link
 * History} as it is answered. Writes never overlap a write in flight (as a file system issues them); reads overlap
 * anything. Faults are actions run, off the device's threads, when the operation of their index is issued.
 */
final class HistoryWorkload {
    static final int BLOCK = 4096;

    /** What a run did, and every read the history does not allow. */
    record Result(
            long seed,
            int ops,
            long reads,
            long readsOfWrites,
            long writes,
            long flushes,
            long failedReads,
            long failedWrites,
            long failedFlushes,
            List<String> violations) {
        @Override
        public String toString() {
            return "seed " + seed + ": " + ops + " operations: " + reads + " reads (" + readsOfWrites
                    + " found written data, " + failedReads + " failed), " + writes + " writes (" + failedWrites
                    + " failed), " + flushes + " flushes (" + failedFlushes + " failed); " + violations.size()
                    + " violation(s)"
                    + (violations.isEmpty() ? "" : ": " + violations.subList(0, Math.min(5, violations.size())));
        }
    }

    private final VirtualDevice dev;
    private final long deviceBytes;
    private final History history;
    private final long seed;
    private final Map<Integer, Runnable> faults = new ConcurrentHashMap<>();
    private final BitSet writing = new BitSet();
    private final List<String> violations = new CopyOnWriteArrayList<>();
    private final AtomicLong reads = new AtomicLong();
    private final AtomicLong readsOfWrites = new AtomicLong();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong flushes = new AtomicLong();
    private final AtomicLong failedReads = new AtomicLong();
    private final AtomicLong failedWrites = new AtomicLong();
    private final AtomicLong failedFlushes = new AtomicLong();
    private final AtomicInteger issued = new AtomicInteger();
    private volatile Journal journal;

    /** Hears of every write and flush as it happens: how a child process tells its parent, which may kill it. */
    interface Journal {
        void issued(History.Write w, long offset, int length);

        void answered(History.Write w);

        void flushed(long issued);
    }

    HistoryWorkload journal(Journal j) {
        this.journal = j;
        return this;
    }

    /** Operations issued so far. */
    int issuedCount() {
        return issued.get();
    }

    HistoryWorkload(VirtualDevice dev, long deviceBytes, long seed) {
        this.dev = dev;
        this.deviceBytes = deviceBytes;
        this.history = new History(deviceBytes);
        this.seed = seed;
    }

    History history() {
        return history;
    }

    /** Runs {@code action} (off the device's threads) when operation {@code index} is issued. */
    HistoryWorkload fault(int index, Runnable action) {
        faults.put(index, action);
        return this;
    }

    private record Op(int kind, int queue, long block, int blocks) {}

    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int FLUSH = 2;

    /** Runs {@code count} operations, at most {@code concurrency} at once; bounded by {@code limit}. */
    Result run(int count, int concurrency, int maxBlocks, Duration limit) {
        Random rnd = new Random(seed);
        int queues = dev.queues().size();
        long blocks = deviceBytes / BLOCK;
        List<Op> ops = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int r = rnd.nextInt(100);
            int kind = r < 48 ? WRITE : r < 97 ? READ : FLUSH;
            int n = 1 + rnd.nextInt(maxBlocks);
            // Half the operations go to a small hot range, where they meet each other.
            long first = rnd.nextBoolean() ? rnd.nextInt(16) : (long) (rnd.nextDouble() * (blocks - n));
            ops.add(new Op(kind, rnd.nextInt(queues), Math.min(first, blocks - n), n));
        }
        Flux.range(0, count)
                .flatMap(i -> execute(i, ops.get(i)), concurrency)
                .then()
                .block(limit);
        return new Result(
                seed,
                count,
                reads.get(),
                readsOfWrites.get(),
                writes.get(),
                flushes.get(),
                failedReads.get(),
                failedWrites.get(),
                failedFlushes.get(),
                List.copyOf(violations));
    }

    private Mono<Void> execute(int index, Op op) {
        issued.incrementAndGet();
        Runnable fault = faults.remove(index);
        if (fault != null) {
            Schedulers.boundedElastic().schedule(fault);
        }
        return switch (op.kind) {
            case WRITE -> write(index, op);
            case FLUSH -> flush(op);
            default -> read(index, op);
        };
    }

    private Mono<Void> write(int index, Op op) {
        synchronized (writing) {
            int from = (int) op.block;
            int to = from + op.blocks;
            int busy = writing.nextSetBit(from);
            if (busy >= 0 && busy < to) {
                return read(index, op); // never two writes of one block at once
            }
            writing.set(from, to);
        }
        long offset = op.block * BLOCK;
        int length = op.blocks * BLOCK;
        return Mono.defer(() -> {
            ByteBuf data = PooledByteBufAllocator.DEFAULT.directBuffer(length, length);
            History.Write w = history.issueWrite(offset, length);
            Journal j = journal;
            if (j != null) {
                j.issued(w, offset, length);
            }
            ByteBuffer nio = data.nioBuffer(0, length);
            History.stamp(nio, w.id, offset / History.SECTOR, length / History.SECTOR);
            data.writerIndex(length);
            writes.incrementAndGet();
            return dev.write(op.queue, offset, data)
                    .doOnSuccess(v -> answered(w, true))
                    .onErrorResume(e -> {
                        answered(w, false);
                        failedWrites.incrementAndGet();
                        return Mono.empty();
                    })
                    .doFinally(s -> {
                        data.release();
                        synchronized (writing) {
                            writing.clear((int) op.block, (int) op.block + op.blocks);
                        }
                    });
        });
    }

    private Mono<Void> flush(Op op) {
        return Mono.defer(() -> {
            long at = history.tick();
            flushes.incrementAndGet();
            return dev.flush(op.queue)
                    .doOnSuccess(v -> {
                        history.flushed(at);
                        Journal j = journal;
                        if (j != null) {
                            j.flushed(at);
                        }
                    })
                    .onErrorResume(e -> {
                        failedFlushes.incrementAndGet();
                        return Mono.empty();
                    });
        });
    }

    private void answered(History.Write w, boolean ok) {
        history.answer(w, ok);
        Journal j = journal;
        if (j != null) {
            j.answered(w);
        }
    }

    private Mono<Void> read(int index, Op op) {
        long offset = op.block * BLOCK;
        int length = op.blocks * BLOCK;
        return Mono.defer(() -> {
            long at = history.tick();
            reads.incrementAndGet();
            return dev.read(op.queue, offset, length)
                    .doOnNext(buf -> {
                        try {
                            long answered = history.tick();
                            ByteBuffer nio = buf.nioBuffer(buf.readerIndex(), length);
                            boolean written = false;
                            for (int s = 0; s < length / History.SECTOR; s++) {
                                long sector = offset / History.SECTOR + s;
                                long got = History.decode(nio, s * History.SECTOR, sector);
                                written |= got > 0;
                                String why = history.checkRead(sector, at, answered, got);
                                if (why != null) {
                                    violations.add("operation " + index + " (read of " + length + " bytes at " + offset
                                            + " on queue " + op.queue + "): " + why);
                                    break;
                                }
                            }
                            if (written) {
                                readsOfWrites.incrementAndGet();
                            }
                        } finally {
                            buf.release();
                        }
                    })
                    .then()
                    .onErrorResume(e -> {
                        failedReads.incrementAndGet();
                        return Mono.empty();
                    });
        });
    }
}

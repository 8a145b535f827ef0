package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import dev.reactorubd.uring.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.statistics.Statistics;
import reactor.core.publisher.Mono;

/**
 * Requests with arbitrary operations, offsets, lengths and flags, fed through the test kit to the memory and null
 * backends as the driver would feed them (lengths up to the 32 MiB a request can carry, but zero, odd and negative
 * too; offsets anywhere, negative and near {@code Long.MAX_VALUE} included; unknown operation codes): each request is
 * answered within the request timeout, with its data or with a {@link UbdIoException} carrying an errno; the memory
 * backend agrees with a byte-array model; the device serves a plain request afterwards; and no buffer leaks (the leak
 * check fails the class otherwise).
 */
class VirtualDeviceProperties {
    private static final int CAPACITY = 256 * 1024;
    private static final Duration ANSWERED_WITHIN = Duration.ofSeconds(10);

    /** What one request does. */
    enum Kind { READ, WRITE, WRITE_FUA, FLUSH, DISCARD, WRITE_ZEROES, RAW }

    /** One request: a raw one carries its own operation code and flags. */
    record Op(Kind kind, long offset, int length, int rawOp, int rawFlags, int queue) {
        @Override
        public String toString() {
            return kind + (kind == Kind.RAW ? "(op " + rawOp + ", flags 0x" + Integer.toHexString(rawFlags) + ")" : "")
                    + " @" + offset + "+" + length + " q" + queue;
        }
    }

    @AfterProperty
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Property(tries = 120)
    void memoryAnswersEveryRequestWithDataOrAnErrnoAndMatchesAModel(@ForAll("programs") List<Op> program) {
        byte[] model = new byte[CAPACITY];
        try (VirtualDevice dev = VirtualDevice.serve(new MemoryBackend(CAPACITY), 2, 4, ANSWERED_WITHIN, UbdMetrics.NONE)) {
            int n = 0;
            for (Op op : program) {
                run(dev, op, model, n++);
            }
            stillServes(dev, model);
        }
    }

    @Property(tries = 80)
    void nullAnswersEveryRequestWithZerosOrAnErrno(@ForAll("programs") List<Op> program) {
        try (VirtualDevice dev = VirtualDevice.serve(new NullBackend(), 2, 4, ANSWERED_WITHIN, UbdMetrics.NONE)) {
            for (Op op : program) {
                Outcome o = outcome(dev, op, null);
                Statistics.label("null").collect(op.kind(), o.errno == 0 ? "ok" : Errno.name(o.errno));
                if (o.data != null) {
                    assertEquals(op.length(), o.data.length, op + ": the whole length");
                    assertArrayEquals(new byte[op.length()], o.data, op + ": zeros");
                }
            }
            stillServes(dev, null);
        }
    }

    /** Runs {@code op} against the device and the model, and checks the device did what the model says. */
    private static void run(VirtualDevice dev, Op op, byte[] model, int seed) {
        byte[] written = op.kind() == Kind.WRITE || op.kind() == Kind.WRITE_FUA ? pattern(op.length(), seed) : null;
        Outcome o = outcome(dev, op, written);
        Statistics.label("memory").collect(op.kind(), o.errno == 0 ? "ok" : Errno.name(o.errno));
        boolean inRange = op.offset() >= 0 && op.length() >= 0 && op.offset() <= CAPACITY - op.length();
        switch (op.kind()) {
            case READ -> {
                if (inRange && op.length() > 0) {
                    assertEquals(0, o.errno, op + " in range succeeds");
                    assertArrayEquals(Arrays.copyOfRange(model, (int) op.offset(), (int) op.offset() + op.length()),
                            o.data, op + ": the model's bytes");
                } else {
                    assertTrue(o.errno > 0, op + " out of range or empty fails");
                }
            }
            case WRITE, WRITE_FUA -> {
                if (inRange && op.length() > 0) {
                    assertEquals(0, o.errno, op + " in range succeeds");
                    System.arraycopy(written, 0, model, (int) op.offset(), op.length());
                } else if (op.length() > 0) {
                    assertEquals(Errno.EINVAL, o.errno, op + " beyond the capacity is refused");
                }
            }
            case DISCARD, WRITE_ZEROES -> {
                if (inRange) {
                    assertEquals(0, o.errno, op + " in range succeeds");
                    Arrays.fill(model, (int) op.offset(), (int) op.offset() + op.length(), (byte) 0);
                } else {
                    assertTrue(o.errno > 0, op + " out of range fails");
                }
            }
            case FLUSH -> assertEquals(0, o.errno, op + " succeeds");
            case RAW -> {
                // Unknown operations are refused; known ones act on the model as above, without data of their own.
                int code = op.rawOp();
                if (code == UblkIo.OP_READ || code == UblkIo.OP_WRITE || code == UblkIo.OP_FLUSH
                        || code == UblkIo.OP_DISCARD || code == UblkIo.OP_WRITE_ZEROES) {
                    if (code == UblkIo.OP_DISCARD || code == UblkIo.OP_WRITE_ZEROES) {
                        if (o.errno == 0) {
                            Arrays.fill(model, (int) op.offset(), (int) op.offset() + op.length(), (byte) 0);
                        }
                    } else if (code == UblkIo.OP_WRITE) {
                        assertTrue(o.errno > 0 || op.length() == 0, op + ": a raw write has no data to copy in");
                    }
                } else {
                    assertEquals(Errno.EOPNOTSUPP, o.errno, op + ": an unknown operation is not served");
                }
            }
        }
    }

    /** The result of one request: its data (a READ), or the errno it failed with (0: it succeeded). */
    private record Outcome(int errno, byte[] data) {
    }

    private static Outcome outcome(VirtualDevice dev, Op op, byte[] written) {
        int q = op.queue();
        Mono<byte[]> request = switch (op.kind()) {
            case READ -> dev.read(q, op.offset(), op.length()).map(b -> {
                try {
                    return ByteBufUtil.getBytes(b);
                } finally {
                    b.release();
                }
            });
            case WRITE, WRITE_FUA -> dev.write(q, op.offset(), Unpooled.wrappedBuffer(
                    written != null ? written : new byte[Math.max(0, op.length())]), op.kind() == Kind.WRITE_FUA)
                    .then(Mono.empty());
            case FLUSH -> dev.flush(q).then(Mono.empty());
            case DISCARD -> dev.discard(q, op.offset(), op.length()).then(Mono.empty());
            case WRITE_ZEROES -> dev.writeZeroes(q, op.offset(), op.length()).then(Mono.empty());
            case RAW -> dev.submitRaw(q, op.rawOp(), op.rawFlags(), op.offset(), op.length()).then(Mono.empty());
        };
        try {
            byte[] data = request.block(ANSWERED_WITHIN.plusSeconds(5));
            return new Outcome(0, data);
        } catch (UbdIoException e) {
            assertTrue(e.errno() > 0, op + ": a positive errno: " + e);
            assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), op + ": a message");
            return new Outcome(e.errno(), null);
        } catch (IllegalStateException e) {
            if (String.valueOf(e.getMessage()).startsWith("Timeout on blocking read")) {
                fail(op + " was not answered within " + ANSWERED_WITHIN.plusSeconds(5), e);
            }
            throw e;
        }
    }

    /** After whatever came before, a plain write and read still work (and agree with the model, where there is one). */
    private static void stillServes(VirtualDevice dev, byte[] model) {
        byte[] data = pattern(8192, 99);
        dev.write(1, 4096, Unpooled.wrappedBuffer(data)).block(ANSWERED_WITHIN);
        ByteBuf back = dev.read(0, 4096, 8192).block(ANSWERED_WITHIN);
        try {
            assertArrayEquals(model == null ? new byte[8192] : data, ByteBufUtil.getBytes(back), "served afterwards");
        } finally {
            back.release();
        }
        assertEquals(0, dev.inFlight(0) + dev.inFlight(1) + dev.waiting(0) + dev.waiting(1), "nothing left hanging");
    }

    private static byte[] pattern(int length, long seed) {
        byte[] b = new byte[Math.max(0, length)];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Provide
    Arbitrary<List<Op>> programs() {
        Arbitrary<Kind> kinds = Arbitraries.frequency(Tuple.of(4, Kind.READ), Tuple.of(4, Kind.WRITE),
                Tuple.of(1, Kind.WRITE_FUA), Tuple.of(1, Kind.FLUSH), Tuple.of(2, Kind.DISCARD),
                Tuple.of(2, Kind.WRITE_ZEROES), Tuple.of(2, Kind.RAW));
        Arbitrary<Long> offsets = Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.longs().between(0, CAPACITY / 512 - 1).map(s -> s * 512)),
                Tuple.of(2, Arbitraries.longs().between(0, CAPACITY + 8192L)),
                Tuple.of(1, Arbitraries.of(-1L, -512L, (long) CAPACITY, CAPACITY - 1L, CAPACITY - 512L,
                        Long.MAX_VALUE, Long.MAX_VALUE - 511, Long.MIN_VALUE, 1L << 40)),
                Tuple.of(1, Arbitraries.longs()));
        Arbitrary<Integer> lengths = Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.integers().between(1, 128).map(s -> s * 512)),
                Tuple.of(2, Arbitraries.integers().between(0, 70_000)),
                Tuple.of(1, Arbitraries.of(0, 1, 511, 513, 4097, -1, -4096, CAPACITY, CAPACITY + 512,
                        (int) UblkIo.MAX_IO_BYTES)));
        Arbitrary<Integer> rawOps = Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.of(UblkIo.OP_READ, UblkIo.OP_WRITE, UblkIo.OP_FLUSH, UblkIo.OP_DISCARD,
                        UblkIo.OP_WRITE_SAME, UblkIo.OP_WRITE_ZEROES, UblkIo.OP_ZONE_OPEN, UblkIo.OP_ZONE_APPEND,
                        UblkIo.OP_REPORT_ZONES)),
                Tuple.of(1, Arbitraries.integers().between(0, 255)));
        Arbitrary<Integer> rawFlags = Arbitraries.integers().between(0, 0xFFFFFF).map(f -> f << 8);
        Arbitrary<Op> ops = Combinators.combine(kinds, offsets, lengths, rawOps, rawFlags,
                Arbitraries.integers().between(0, 1)).as(Op::new);
        return ops.list().ofMinSize(1).ofMaxSize(12);
    }
}

package dev.reactorubd.targets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.metrics.UbdMetrics;
import dev.reactorubd.sys.UblkIo;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.Cases;
import dev.reactorubd.testing.Gen;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
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
    enum Kind {
        READ,
        WRITE,
        WRITE_FUA,
        FLUSH,
        DISCARD,
        WRITE_ZEROES,
        RAW
    }

    /** One request: a raw one carries its own operation code and flags. */
    record Op(Kind kind, long offset, int length, int rawOp, int rawFlags, int queue) {
        @Override
        public String toString() {
            return kind + (kind == Kind.RAW ? "(op " + rawOp + ", flags 0x" + Integer.toHexString(rawFlags) + ")" : "")
                    + " @" + offset + "+" + length + " q" + queue;
        }
    }

    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void memoryAnswersEveryRequestWithDataOrAnErrnoAndMatchesAModel() {
        Cases.forAll(120, programs(), program -> {
            byte[] model = new byte[CAPACITY];
            try (VirtualDevice dev =
                    VirtualDevice.serve(new MemoryBackend(CAPACITY), 2, 4, ANSWERED_WITHIN, UbdMetrics.NONE)) {
                int n = 0;
                for (Op op : program) {
                    run(dev, op, model, n++);
                }
                stillServes(dev, model);
            }
        });
    }

    @Test
    void nullAnswersEveryRequestWithZerosOrAnErrno() {
        Cases.forAll(80, programs(), program -> {
            try (VirtualDevice dev = VirtualDevice.serve(new NullBackend(), 2, 4, ANSWERED_WITHIN, UbdMetrics.NONE)) {
                for (Op op : program) {
                    Outcome o = outcome(dev, op, null);
                    if (o.data != null) {
                        assertEquals(op.length(), o.data.length, op + ": the whole length");
                        assertArrayEquals(new byte[op.length()], o.data, op + ": zeros");
                    }
                }
                stillServes(dev, null);
            }
        });
    }

    /** Runs {@code op} against the device and the model, and checks the device did what the model says. */
    private static void run(VirtualDevice dev, Op op, byte[] model, int seed) {
        byte[] written = op.kind() == Kind.WRITE || op.kind() == Kind.WRITE_FUA ? pattern(op.length(), seed) : null;
        Outcome o = outcome(dev, op, written);
        boolean inRange = op.offset() >= 0 && op.length() >= 0 && op.offset() <= CAPACITY - op.length();
        switch (op.kind()) {
            case READ -> {
                if (inRange && op.length() > 0) {
                    assertEquals(0, o.errno, op + " in range succeeds");
                    assertArrayEquals(
                            Arrays.copyOfRange(model, (int) op.offset(), (int) op.offset() + op.length()),
                            o.data,
                            op + ": the model's bytes");
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
                if (code == UblkIo.OP_READ
                        || code == UblkIo.OP_WRITE
                        || code == UblkIo.OP_FLUSH
                        || code == UblkIo.OP_DISCARD
                        || code == UblkIo.OP_WRITE_ZEROES) {
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
    private record Outcome(int errno, byte[] data) {}

    private static Outcome outcome(VirtualDevice dev, Op op, byte[] written) {
        int q = op.queue();
        Mono<byte[]> request = switch (op.kind()) {
            case READ ->
                dev.read(q, op.offset(), op.length()).map(b -> {
                    try {
                        return ByteBufUtil.getBytes(b);
                    } finally {
                        b.release();
                    }
                });
            case WRITE, WRITE_FUA ->
                dev.write(
                                q,
                                op.offset(),
                                Unpooled.wrappedBuffer(written != null ? written : new byte[Math.max(0, op.length())]),
                                op.kind() == Kind.WRITE_FUA)
                        .then(Mono.empty());
            case FLUSH -> dev.flush(q).then(Mono.empty());
            case DISCARD -> dev.discard(q, op.offset(), op.length()).then(Mono.empty());
            case WRITE_ZEROES -> dev.writeZeroes(q, op.offset(), op.length()).then(Mono.empty());
            case RAW ->
                dev.submitRaw(q, op.rawOp(), op.rawFlags(), op.offset(), op.length())
                        .then(Mono.empty());
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

    static Gen<List<Op>> programs() {
        Gen<Kind> kinds = Gen.<Kind>weighted()
                .value(4, Kind.READ)
                .value(4, Kind.WRITE)
                .value(1, Kind.WRITE_FUA)
                .value(1, Kind.FLUSH)
                .value(2, Kind.DISCARD)
                .value(2, Kind.WRITE_ZEROES)
                .value(2, Kind.RAW);
        Gen<Long> offsets = Gen.<Long>weighted()
                .add(8, Gen.longs(0, CAPACITY / 512 - 1).map(s -> s * 512))
                .add(2, Gen.longs(0, CAPACITY + 8192L))
                .add(
                        1,
                        Gen.of(
                                -1L,
                                -512L,
                                (long) CAPACITY,
                                CAPACITY - 1L,
                                CAPACITY - 512L,
                                Long.MAX_VALUE,
                                Long.MAX_VALUE - 511,
                                Long.MIN_VALUE,
                                1L << 40))
                .add(1, Gen.anyLong());
        Gen<Integer> lengths = Gen.<Integer>weighted()
                .add(8, Gen.ints(1, 128).map(s -> s * 512))
                .add(2, Gen.ints(0, 70_000))
                .add(1, Gen.of(0, 1, 511, 513, 4097, -1, -4096, CAPACITY, CAPACITY + 512, (int) UblkIo.MAX_IO_BYTES));
        Gen<Integer> rawOps = Gen.<Integer>weighted()
                .add(
                        3,
                        Gen.of(
                                UblkIo.OP_READ,
                                UblkIo.OP_WRITE,
                                UblkIo.OP_FLUSH,
                                UblkIo.OP_DISCARD,
                                UblkIo.OP_WRITE_SAME,
                                UblkIo.OP_WRITE_ZEROES,
                                UblkIo.OP_ZONE_OPEN,
                                UblkIo.OP_ZONE_APPEND,
                                UblkIo.OP_REPORT_ZONES))
                .add(1, Gen.ints(0, 255));
        Gen<Integer> rawFlags = Gen.ints(0, 0xFFFFFF).map(f -> f << 8);
        Gen<Integer> queues = Gen.ints(0, 1);
        Gen<Op> ops = r -> new Op(
                kinds.next(r), offsets.next(r), lengths.next(r), rawOps.next(r), rawFlags.next(r), queues.next(r));
        return ops.list(1, 12);
    }
}

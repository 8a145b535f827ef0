package dev.reactorubd.bench;

import dev.reactorubd.Errno;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.uring.Libc;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The copy of a READ's data to the kernel when the backend answers with a buffer in {@code parts} pieces (a striped
 * or split backend's composite): gathered into one buffer and written with one {@code pwrite} (what the queue does
 * today), or written from the pieces with one {@code pwritev}; {@code parts=1} is the plain {@code pwrite} of a
 * contiguous buffer, the common case. A tmpfs file stands in for the ublk char device: both are a kernel copy from the
 * process's pages into kernel pages ({@code copy_from_iter}), with no device IO. Scores are copies per second.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CopyPathBenchmark {
    @Param({"4096", "65536", "524288"})
    public int size;

    @Param({"1", "4", "16"})
    public int parts;

    private Path file;
    private int fd;
    private CompositeByteBuf data;
    private Arena arena;
    private MemorySegment iov;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Path dir = Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        file = Files.createTempFile(dir, "ubd-copy", ".img");
        fd = Libc.open(file.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0) {
            throw new IllegalStateException("open " + file + ": " + Errno.describe(-fd));
        }
        data = PooledByteBufAllocator.DEFAULT.compositeDirectBuffer(parts);
        for (int i = 0; i < parts; i++) {
            int n = size / parts;
            data.addComponent(true, PooledByteBufAllocator.DEFAULT.directBuffer(n, n).writeZero(n));
        }
        arena = Arena.ofConfined();
        iov = arena.allocate(16L * parts, 8);
        // Let the file's pages exist, as a ublk request's pages do.
        check(Libc.pwrite(fd, address(gather()), size, 0));
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        data.release();
        arena.close();
        Libc.close(fd);
        Files.deleteIfExists(file);
    }

    private ByteBuf gathered;

    private ByteBuf gather() {
        if (gathered == null) {
            gathered = PooledByteBufAllocator.DEFAULT.directBuffer(size, size);
        }
        gathered.clear().writeBytes(data, data.readerIndex(), size);
        return gathered;
    }

    private static long address(ByteBuf b) {
        return Buffers.address(b, b.readerIndex());
    }

    private long check(long n) {
        if (n != size) {
            throw new IllegalStateException("copied " + n + " of " + size);
        }
        return n;
    }

    /** Today's path: a composite is gathered into one buffer, then written with pwrite (parts=1: pwrite alone). */
    @Benchmark
    public long gatherThenPwrite() {
        if (parts == 1) {
            return check(Libc.pwrite(fd, address(data.component(0)), size, 0));
        }
        return check(Libc.pwrite(fd, address(gather()), size, 0));
    }

    /** The pieces as they are, in one pwritev. */
    @Benchmark
    public long pwritev() {
        for (int i = 0; i < parts; i++) {
            ByteBuf c = data.component(i);
            iov.set(ValueLayout.JAVA_LONG, 16L * i, address(c));
            iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, c.readableBytes());
        }
        return check(Libc.pwritev(fd, iov.address(), parts, 0));
    }
}

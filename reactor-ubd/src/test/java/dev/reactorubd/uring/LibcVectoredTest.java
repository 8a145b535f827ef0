package dev.reactorubd.uring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.Errno;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** pwritev writes its pieces in order at the offset, as the queue's vectored copy of a composite READ relies on. */
class LibcVectoredTest {
    @Test
    void pwritevWritesThePiecesInOrderAtTheOffset(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("v.img");
        Files.write(file, new byte[64]);
        int fd = Libc.open(file.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(3).fill((byte) 'a');
            MemorySegment b = arena.allocate(5).fill((byte) 'b');
            MemorySegment c = arena.allocate(2).fill((byte) 'c');
            MemorySegment iov = arena.allocate(48, 8);
            MemorySegment[] parts = {a, b, c};
            for (int i = 0; i < 3; i++) {
                iov.set(ValueLayout.JAVA_LONG, 16L * i, parts[i].address());
                iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, parts[i].byteSize());
            }
            assertEquals(10, Libc.pwritev(fd, iov.address(), 3, 7));
            assertEquals(-Errno.EBADF, Libc.pwritev(-1, iov.address(), 3, 0));
        } finally {
            Libc.close(fd);
        }
        byte[] expected = new byte[64];
        System.arraycopy("aaabbbbbcc".getBytes(), 0, expected, 7, 10);
        assertArrayEquals(expected, Files.readAllBytes(file));
    }
}

package dev.reactorubd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.testing.TaskFlags;
import io.netty.channel.IoEventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link IoFlusher} on this machine's kernel and Netty io_uring loops: a loop's thread becomes an IO flusher (or, without
 * CAP_SYS_RESOURCE, is refused and says so) once, and no other thread changes. The kernel's task flags are the
 * judge, read from /proc, so the test checks the same thing with and without the capability. (A whole
 * {@link UbdServer} needs ublk; {@code MemoryPressureDeviceTest} checks its queue threads in the test VM.)
 */
class IoFlusherTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final int CAP_SYS_RESOURCE = 24;
    private MultiThreadIoEventLoopGroup loops;

    @BeforeEach
    void setUp() {
        assumeTrue(IoUring.isAvailable(), "io_uring is not available here: " + IoUring.unavailabilityCause());
        // Short names: the kernel keeps 15 characters of a thread's name, and the test finds the loops by it.
        loops = new MultiThreadIoEventLoopGroup(
                2, new DefaultThreadFactory("iofl", true), IoUringIoHandler.newFactory());
    }

    @AfterEach
    void tearDown() {
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    @Test
    void aLoopThreadBecomesAnIoFlusherOnceAndNoOtherThreadDoes() throws Exception {
        boolean capable = hasCapability(CAP_SYS_RESOURCE);
        Iterator<IoEventLoop> it = List.of(loops.next(), loops.next()).iterator();
        EventExecutor flusher = it.next();
        EventExecutor other = it.next();
        other.submit(() -> {}).syncUninterruptibly(); // start its thread, so that it can be looked at

        assertEquals(
                capable, IoFlusher.enable(flusher).block(WAIT), "PR_SET_IO_FLUSHER with CAP_SYS_RESOURCE " + capable);
        assertEquals(capable, IoFlusher.enable(flusher).block(WAIT), "the second call gives the first one's outcome");

        List<TaskFlags.Task> tasks = TaskFlags.of(ProcessHandle.current().pid()).stream()
                .filter(t -> t.name().startsWith("iofl-"))
                .toList();
        assertEquals(2, tasks.size(), "both loop threads: " + tasks);
        assertEquals(
                capable ? 1 : 0,
                tasks.stream().filter(TaskFlags.Task::ioFlusher).count(),
                tasks.toString());
        assertTrue(
                TaskFlags.of(ProcessHandle.current().pid()).stream()
                        .filter(t -> !t.name().startsWith("iofl-"))
                        .noneMatch(TaskFlags.Task::ioFlusher),
                "no thread but the loop that asked");

        if (capable) {
            assertTrue(IoFlusher.isSet(flusher).block(WAIT));
            assertFalse(IoFlusher.isSet(other).block(WAIT));
        } else {
            UbdPermissionException e = assertThrows(
                    UbdPermissionException.class, () -> IoFlusher.isSet(flusher).block(WAIT));
            assertEquals(Errno.EPERM, e.errno());
            assertTrue(e.getMessage().contains("CAP_SYS_RESOURCE"), e.getMessage());
        }
    }

    /** Whether this process has capability {@code bit} in its effective set. */
    private static boolean hasCapability(int bit) throws Exception {
        String eff = Files.readAllLines(Path.of("/proc/self/status")).stream()
                .filter(l -> l.startsWith("CapEff:"))
                .findFirst()
                .orElseThrow()
                .substring("CapEff:".length())
                .strip();
        return (Long.parseUnsignedLong(eff, 16) >>> bit & 1) == 1;
    }
}

package dev.reactorubd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The kernel's own view of a process's threads: each task's name ({@code comm}, at most 15 characters) and its
 * {@code PF_*} flags (field 9 of {@code /proc/PID/task/TID/stat}), read without any capability. IO_FLUSHER state is
 * {@link #PF_MEMALLOC_NOIO} and {@link #PF_LOCAL_THROTTLE} together, which is how a test sees it in a thread of any
 * process, where {@code prctl(PR_GET_IO_FLUSHER)} answers only for the calling thread and only with CAP_SYS_RESOURCE.
 */
public final class TaskFlags {
    /** {@code PF_MEMALLOC_NOIO} (include/linux/sched.h): the task's allocations never start IO to reclaim. */
    public static final long PF_MEMALLOC_NOIO = 0x00080000L;
    /** {@code PF_LOCAL_THROTTLE}: the task's writes are throttled only against its own dirty pages. */
    public static final long PF_LOCAL_THROTTLE = 0x00100000L;
    /** Both: what {@code PR_SET_IO_FLUSHER} sets. */
    public static final long IO_FLUSHER = PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE;

    private TaskFlags() {}

    /** One thread of a process. */
    public record Task(long tid, String name, long flags) {
        /** {@return whether the kernel has the thread in IO_FLUSHER state} */
        public boolean ioFlusher() {
            return (flags & IO_FLUSHER) == IO_FLUSHER;
        }

        @Override
        public String toString() {
            return name + "[" + tid + ", flags 0x" + Long.toHexString(flags) + "]";
        }
    }

    /** The threads of process {@code pid} now (threads that end while they are read are left out). */
    public static List<Task> of(long pid) {
        List<Task> tasks = new ArrayList<>();
        try (Stream<Path> dirs = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path dir : dirs.toList()) {
                String stat;
                try {
                    stat = Files.readString(dir.resolve("stat"));
                } catch (NoSuchFileException gone) {
                    continue;
                }
                // "tid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold spaces and parentheses.
                int open = stat.indexOf('(');
                int close = stat.lastIndexOf(')');
                String[] rest = stat.substring(close + 2).split(" ");
                tasks.add(new Task(
                        Long.parseLong(dir.getFileName().toString()),
                        stat.substring(open + 1, close),
                        Long.parseUnsignedLong(rest[6])));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return tasks;
    }
}

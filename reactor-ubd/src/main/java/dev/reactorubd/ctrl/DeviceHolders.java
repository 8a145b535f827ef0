package dev.reactorubd.ctrl;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Who holds a ublk block device open, as far as this process can see: file systems mounted from it, devices stacked on
 * it (device-mapper, md), and processes with it open. The kernel's DEL_DEV waits for every one of them to let go, so
 * removing a held device is refused up front, naming them, rather than left to hang until a timeout.
 *
 * <p>Reads /proc and /sys: blocking calls, made off event loops (the control plane runs this on a worker).
 */
final class DeviceHolders {
    private DeviceHolders() {}

    /** What holds {@code /dev/ublkbN}, one phrase each; empty when nothing does. */
    static List<String> of(int devId) {
        String name = "ublkb" + devId;
        String dev = "/dev/" + name;
        List<String> holders = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mounts"))) {
                String[] f = line.split(" ");
                if (f.length > 1 && (f[0].equals(dev) || f[0].startsWith(dev + "p"))) {
                    holders.add("mounted at " + f[1]);
                }
            }
        } catch (IOException e) {
            // No /proc: nothing to tell.
        }
        Path stacked = Path.of("/sys/block", name, "holders");
        if (Files.isDirectory(stacked)) {
            try (DirectoryStream<Path> s = Files.newDirectoryStream(stacked)) {
                s.forEach(h -> holders.add("held by " + h.getFileName()));
            } catch (IOException e) {
                // Gone meanwhile.
            }
        }
        long self = ProcessHandle.current().pid();
        try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), p -> isPid(p.getFileName()))) {
            for (Path proc : procs) {
                if (openIn(proc, dev)) {
                    String pid = proc.getFileName().toString();
                    holders.add("open in process " + pid + commandOf(proc)
                            + (pid.equals(Long.toString(self)) ? " (this one)" : ""));
                }
            }
        } catch (IOException e) {
            // No /proc: nothing to tell.
        }
        return holders;
    }

    /**
     * What holds {@code /dev/ublkcN}, the device's char device, one phrase each (a process with it open or mapped);
     * empty when no process does, which while START_USER_RECOVERY is refused means the kernel still holds it: a dead
     * server's io_uring is being torn down.
     */
    static List<String> ofCharDevice(int devId) {
        String dev = DeviceInfo.charDevicePath(devId);
        List<String> holders = new ArrayList<>();
        long self = ProcessHandle.current().pid();
        try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), p -> isPid(p.getFileName()))) {
            for (Path proc : procs) {
                String pid = proc.getFileName().toString();
                String how = openIn(proc, dev) ? "open" : mappedIn(proc, dev) ? "mapped" : null;
                if (how != null) {
                    holders.add(how + " in process " + pid + commandOf(proc)
                            + (pid.equals(Long.toString(self)) ? " (this one)" : ""));
                }
            }
        } catch (IOException e) {
            // No /proc: nothing to tell.
        }
        return holders;
    }

    private static boolean mappedIn(Path proc, String dev) {
        try (var lines = Files.lines(proc.resolve("maps"))) {
            return lines.anyMatch(l -> l.endsWith(" " + dev) || l.endsWith(" " + dev + " (deleted)"));
        } catch (IOException | UncheckedIOException | SecurityException e) {
            return false; // exited meanwhile, or not ours to see
        }
    }

    private static boolean isPid(Path name) {
        String s = name.toString();
        return !s.isEmpty() && s.chars().allMatch(Character::isDigit);
    }

    private static boolean openIn(Path proc, String dev) {
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(proc.resolve("fd"))) {
            for (Path fd : fds) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    // Once the disk was stopped its node is gone, and the link says so.
                    if (target.equals(dev) || target.equals(dev + " (deleted)")) {
                        return true;
                    }
                } catch (IOException e) {
                    // Closed meanwhile.
                }
            }
        } catch (IOException | SecurityException e) {
            // Exited meanwhile, or not ours to see.
        }
        return false;
    }

    private static String commandOf(Path proc) {
        try {
            return " (" + Files.readString(proc.resolve("comm")).trim() + ")";
        } catch (IOException e) {
            return "";
        }
    }
}

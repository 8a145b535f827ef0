package dev.reactorubd.samples;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine;
import reactor.core.Exceptions;

/**
 * The exit statuses of {@code ubd}, one per thing a shell user does about a failure, and the mapping from errors to
 * them. Every error also prints one line on stderr that starts with {@code ubd: } and says what to do.
 */
final class ExitCodes {
    /** The verb did what it was asked. */
    static final int OK = 0;
    /** A failure at run time: an IO error, a timeout, a device that failed while served, anything unexpected. */
    static final int FAILURE = 1;
    /**
     * The command line cannot work as written: a wrong or missing option, arguments the kernel refused as invalid, or
     * a target that cannot be opened.
     */
    static final int USAGE = 2;
    /** No ublk here: the ublk_drv module is not loaded, or the kernel lacks a feature that was asked for. */
    static final int NO_UBLK = 3;
    /** The kernel refused for lack of privilege: run as root (CAP_SYS_ADMIN). */
    static final int PERMISSION = 4;
    /**
     * The kernel refused for the device: no device has that id, it is busy (in use, mounted, served), or it is not in
     * a state that allows the verb (such as a resize of a device that is not started).
     */
    static final int DEVICE = 5;

    private ExitCodes() {}

    /** The table shown by {@code --help}, in the order of the codes. */
    static Map<String, String> helpTable() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("0", "success");
        m.put("1", "failure at run time (IO error, timeout, unexpected error)");
        m.put(
                "2",
                "usage: a wrong or missing option, arguments the kernel refused (EINVAL), or a target that "
                        + "cannot be opened as given (missing file, unreachable NBD server); the message says what to write");
        m.put("3", "no ublk: load the driver (modprobe ublk_drv, Linux 6.5+), or the kernel lacks a feature asked for");
        m.put("4", "permission denied: run as root (CAP_SYS_ADMIN)");
        m.put(
                "5",
                "device refused: no device has that id, it is busy (mounted, open, served by another process), or "
                        + "its state does not allow the verb (resize of a device not started)");
        return m;
    }

    /** The exit status for an error that ended a verb. */
    static int of(Throwable error) {
        if (error instanceof ConfiguredDevices.DeviceFailed failed) {
            return of(failed.getCause()); // a device of serve --config: its message names the line, its cause the code
        }
        Throwable e = unwrap(error);
        if (e instanceof UbdCommand.UsageError || e instanceof CommandLine.ParameterException) {
            return USAGE;
        }
        if (e instanceof UbdException u) {
            switch (u.kind()) {
                case INVALID_ARGUMENT:
                    return USAGE;
                case MODULE_NOT_LOADED, UNSUPPORTED:
                    return NO_UBLK;
                case PERMISSION:
                    return PERMISSION;
                case NO_SUCH_DEVICE, BUSY, DEVICE_STATE:
                    return DEVICE;
                default:
                    if (u.errno() == Errno.EINVAL) { // the kernel refused the arguments
                        return USAGE;
                    }
            }
        }
        if (error instanceof TargetOptions.TargetUnavailable) {
            return USAGE; // the target as given cannot be opened: the message says why
        }
        return FAILURE;
    }

    /** The one line printed on stderr for an error, without the {@code ubd: } prefix. */
    static String message(Throwable error) {
        Throwable e = unwrap(error);
        String m = e.getMessage();
        if (e instanceof IllegalStateException && m != null && m.startsWith("Timeout on blocking read")) {
            return "timed out waiting for the kernel or the target (" + m + ")";
        }
        if (m == null || m.isBlank()) {
            m = e.getClass().getSimpleName();
        } else if (!(e instanceof RuntimeException)
                || e.getClass().getPackageName().startsWith("java.")) {
            m = e.getClass().getSimpleName() + ": " + m; // an unexpected error: say what it was
        }
        return m.replace('\n', ' ');
    }

    /** The error itself, out of Reactor's and this command's wrappers. */
    static Throwable unwrap(Throwable error) {
        Throwable e = Exceptions.unwrap(error);
        while (e instanceof TargetOptions.TargetUnavailable && e.getCause() != null) {
            e = Exceptions.unwrap(e.getCause());
        }
        return e;
    }
}

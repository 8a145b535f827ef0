package dev.reactorubd.samples;

import dev.reactorubd.server.UbdServer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * The devices of {@code ubd serve --config FILE}, served from one process and one {@link UbdServer}: every line of the
 * file at start, then, on each SIGHUP, the file as it reads then ({@link ReloadPlan}); SIGINT or SIGTERM stops them all.
 *
 * <p>At start, a device that cannot be served stops the ones already served and the command fails with its error,
 * so that a service manager sees the failure. On a reload, a file that no longer parses changes nothing; a changed
 * line is refused and its device goes on as it was; a device that cannot be added is reported and the others stand.
 * A removed device is stopped and deleted as SIGTERM would (IO of a process that still has it open then fails).
 * Everything runs on the thread that called {@link #serve}: signals only queue what to do.
 */
final class ConfiguredDevices {
    private enum Signal {
        RELOAD,
        STOP
    }

    private final Path file;
    private final UbdServer server;
    private final boolean json;
    /** Served devices by id, in the order they were added. */
    private final Map<Integer, Served> served = new LinkedHashMap<>();

    private record Served(ConfigFile.DeviceLine line, TargetDevice device) {}

    private ConfiguredDevices(Path file, UbdServer server, boolean json) {
        this.file = file;
        this.server = server;
        this.json = json;
    }

    /**
     * Serves the devices of {@code file} on the server {@code servers} builds (after the file is read) until SIGINT
     * or SIGTERM, applying the file again on each SIGHUP, then stops (or hands over) every device and closes the server. {@return the exit status: 0, or {@link
     * ExitCodes#FAILURE} when a device could not be stopped}
     */
    static int serve(Path file, Supplier<UbdServer> servers, boolean json) throws InterruptedException {
        // The file is read before the server is built, so that a file that cannot work fails without touching ublk.
        List<ConfigFile.DeviceLine> lines = ConfigFile.read(file);
        UbdServer server = servers.get();
        BlockingQueue<Signal> signals = new LinkedBlockingQueue<>();
        // Handled from the start, so that a SIGTERM or SIGHUP while the devices are being added waits its turn.
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> signals.add(Signal.RELOAD));
        for (String name : List.of("INT", "TERM")) {
            sun.misc.Signal.handle(new sun.misc.Signal(name), s -> signals.add(Signal.STOP));
        }
        ConfiguredDevices devices = new ConfiguredDevices(file, server, json);
        try {
            for (ConfigFile.DeviceLine l : lines) {
                devices.add(l);
            }
        } catch (RuntimeException e) {
            devices.stopAll();
            server.close();
            throw e;
        }
        System.out.println(
                json
                        ? "{\"event\": \"configured\", \"config\": " + DeviceListing.string(file.toString())
                                + ", \"devices\": " + devices.served.size() + ", \"pid\": "
                                + ProcessHandle.current().pid() + "}"
                        : "serving " + devices.served.size() + " device(s) of " + file
                                + " (SIGHUP to apply a changed file, " + "SIGINT or SIGTERM to stop)");
        System.out.flush();
        try {
            while (signals.take() == Signal.RELOAD) {
                devices.reload();
            }
            return devices.stopAll();
        } finally {
            server.close();
        }
    }

    private void add(ConfigFile.DeviceLine l) {
        TargetDevice d;
        try {
            d = TargetDevice.start(server, l.target(), l.device());
        } catch (RuntimeException e) {
            throw new DeviceFailed(file + ": line " + l.line() + ": device " + l.id() + ": " + ExitCodes.message(e), e);
        }
        served.put(l.id(), new Served(l, d));
        System.out.println(
                json
                        ? UbdCommand.startJson(d.device, d.target.describe(), d.size, d.handsOver())
                        : UbdCommand.startLine(d.device, d.target.describe(), d.size));
        System.out.flush();
    }

    /** A device of the file could not be served: the message names the line, the cause is the error. */
    static final class DeviceFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        DeviceFailed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private void reload() {
        List<ConfigFile.DeviceLine> wanted;
        try {
            wanted = ConfigFile.read(file);
        } catch (RuntimeException e) {
            System.err.println("ubd: reload refused, every device goes on as it was: " + ExitCodes.message(e));
            return;
        }
        Map<Integer, List<String>> now = new LinkedHashMap<>();
        served.forEach((id, s) -> now.put(id, s.line().words()));
        ReloadPlan plan = ReloadPlan.of(now, wanted);
        for (ConfigFile.DeviceLine l : plan.refused()) {
            System.err.println("ubd: " + file + ": line " + l.line() + ": device " + l.id() + " changed; a served "
                    + "device is not changed live, so it goes on as it was: to change it, remove its line and reload "
                    + "(the device is deleted), then add the new line and reload again");
        }
        for (int id : plan.remove()) {
            Served s = served.remove(id);
            UbdCommand.stop(s.device().device, false);
            s.device().release();
        }
        List<Integer> added = new ArrayList<>();
        List<Integer> failed = new ArrayList<>();
        for (ConfigFile.DeviceLine l : plan.add()) {
            try {
                add(l);
                added.add(l.id());
            } catch (DeviceFailed e) {
                System.err.println("ubd: " + e.getMessage());
                failed.add(l.id());
            }
        }
        List<Integer> refused =
                plan.refused().stream().map(ConfigFile.DeviceLine::id).toList();
        System.out.println(
                json
                        ? "{\"event\": \"reloaded\", \"added\": " + added + ", \"removed\": " + plan.remove()
                                + ", \"failed\": " + failed + ", \"refused\": " + refused + ", \"unchanged\": "
                                + plan.unchanged() + "}"
                        : "reloaded " + file + ": added " + ids(added) + ", removed " + ids(plan.remove()) + ", failed "
                                + ids(failed) + ", refused " + ids(refused) + ", " + plan.unchanged() + " unchanged");
        System.out.flush();
    }

    private static String ids(List<Integer> ids) {
        return ids.isEmpty() ? "none" : ids.stream().map(String::valueOf).collect(Collectors.joining(" "));
    }

    /** Stops every device (handing over those whose line asks it and that can), last added first. */
    private int stopAll() {
        int status = 0;
        for (Served s : List.copyOf(served.values()).reversed()) {
            status = Math.max(
                    status, UbdCommand.stop(s.device().device, s.device().handsOver()));
            s.device().release();
        }
        served.clear();
        return status;
    }
}

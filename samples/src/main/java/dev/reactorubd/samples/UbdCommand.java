package dev.reactorubd.samples;

import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceParams;
import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.io.KernelQueueTransport.DataCopy;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.spec.TargetSpec;
import io.netty.channel.uring.IoUringIoHandlerConfig;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import reactor.core.publisher.Mono;

/**
 * {@code ubd}: serve a ublk device from a target, and inspect or remove devices.
 *
 * <pre>
 * java -jar samples/target/ubd.jar serve --target memory --size 64M [--queues N] [--depth D]
 * java -jar samples/target/ubd.jar list [-v] [--json]
 * java -jar samples/target/ubd.jar remove 3 | --all [--force]
 * java -jar samples/target/ubd.jar features
 * source &lt;(java -jar samples/target/ubd.jar completion)
 * </pre>
 *
 * <p>Exit statuses are those of {@link ExitCodes}; every error prints one line on stderr starting {@code ubd: }.
 */
@Command(
        name = "ubd",
        mixinStandardHelpOptions = true,
        version = "ubd 0.1.0",
        scope = CommandLine.ScopeType.INHERIT,
        description = "Serve Linux block devices (/dev/ublkbN) from reactor-ubd targets.",
        subcommands = {
            UbdCommand.Serve.class,
            UbdCommand.Recover.class,
            UbdCommand.ListDevices.class,
            UbdCommand.Remove.class,
            UbdCommand.Resize.class,
            UbdCommand.Features.class,
            UbdCommand.Completion.class
        })
public final class UbdCommand implements Callable<Integer> {

    /** Not instantiated but by picocli. */
    UbdCommand() {}

    /**
     * Runs the command line and exits with its status (see {@link ExitCodes}).
     *
     * @param args the verb and its options, e.g. {@code serve --target memory --size 64M}
     */
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /**
     * The command line with its error handling: every error prints one line on stderr, {@code ubd: } and what to do,
     * and exits with the status {@link ExitCodes#of} gives; only unexpected errors print a stack trace, and only with
     * {@code UBD_DEBUG=1}. Every verb's help ends with the exit status table.
     */
    static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new UbdCommand());
        cmd.setUsageHelpAutoWidth(true); // the terminal's width where known, else 80 columns
        cmd.setParameterExceptionHandler((e, args) -> {
            CommandLine line = e.getCommandLine();
            String verb = line.getCommandSpec().qualifiedName();
            line.getErr().println("ubd: " + e.getMessage().replace('\n', ' ') + " (see '" + verb + " --help')");
            line.getErr().flush();
            return ExitCodes.USAGE;
        });
        cmd.setExecutionExceptionHandler((e, line, parsed) -> {
            int status = ExitCodes.of(e);
            line.getErr().println("ubd: " + ExitCodes.message(e));
            if (status == ExitCodes.FAILURE && "1".equals(System.getenv("UBD_DEBUG"))) {
                e.printStackTrace(line.getErr());
            }
            line.getErr().flush();
            return status;
        });
        addExitCodes(cmd);
        return cmd;
    }

    private static void addExitCodes(CommandLine cmd) {
        cmd.getCommandSpec()
                .usageMessage()
                .exitCodeListHeading("%nExit status:%n")
                .exitCodeList(ExitCodes.helpTable());
        cmd.getSubcommands().values().forEach(UbdCommand::addExitCodes);
    }

    @Override
    public Integer call() {
        throw new UsageError(
                "give a verb: serve, recover, list, remove, resize, features or completion (see 'ubd --help')");
    }

    /** Parses 4096, 512K, 64M, 2G (powers of 1024). */
    static long parseSize(String s) {
        try {
            return TargetSpec.parseSize(s);
        } catch (TargetSpec.InvalidTargetSpecException e) {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
    }

    /** Parses 500ms, 5s, 2m, 1h. */
    static Duration parseDuration(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        try {
            if (t.endsWith("ms")) {
                return positive(s, Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2))));
            }
            long n = Long.parseLong(t.substring(0, Math.max(0, t.length() - 1)));
            return positive(
                    s,
                    switch (t.isEmpty() ? ' ' : t.charAt(t.length() - 1)) {
                        case 's' -> Duration.ofSeconds(n);
                        case 'm' -> Duration.ofMinutes(n);
                        case 'h' -> Duration.ofHours(n);
                        default -> throw new NumberFormatException(t);
                    });
        } catch (NumberFormatException | ArithmeticException e) {
            throw new CommandLine.TypeConversionException(
                    "'" + s + "' is not a duration: use a number with ms, s, m " + "or h, such as 500ms or 30s");
        }
    }

    /** Every duration option is a bound or a timeout: zero or less is refused as it is parsed. */
    private static Duration positive(String s, Duration d) {
        if (d.isNegative() || d.isZero()) {
            throw new CommandLine.TypeConversionException(
                    "'" + s + "' is not a positive duration: use one such as " + "500ms or 30s");
        }
        return d;
    }

    /** A command line that cannot work, with what to write instead; exit status 2. */
    static class UsageError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }

    @Command(
            name = "serve",
            description = "Create a device, serve it from a target until SIGINT or SIGTERM, then "
                    + "stop and delete it. Prints the block device path once it is live. With --id N and a recovery "
                    + "mode, a device N left by a server that died is recovered instead (what a service manager's "
                    + "restart needs).",
            footer = {
                "",
                "Examples:",
                "  ubd serve --target memory --size 1G --queues 2",
                "  ubd serve --target file --file /var/lib/disk.img --create 10G --direct   # creates it if missing",
                "  ubd serve --target nbd --uri nbd://10.0.0.5:10809/vol1",
                "  ubd serve --target mirror --replica file:/a.img --replica nbd+unix:///vol?socket=/run/nbd.sock",
                "  ubd serve --target mirror --replica file:/a.img --replica file:/b.img --assume-current 1"
                        + "   # every replica stale: b.img wins",
                "  ubd serve --target stripe --chunk 64K --part memory:1G --part memory:1G --part memory:1G",
                "  ubd serve --target concat --part file:/a.img --part file:/b.img",
                "  ubd serve --target file --file /var/lib/disk.img --recovery REQUEUE --handover   # then:",
                "  kill $PID; ubd recover --id 3 --target file --file /var/lib/disk.img --handover",
                "  ubd serve --id 3 --target file --file /var/lib/disk.img --recovery REISSUE --json"
                        + "   # adds device 3, or recovers it after a crash"
            })
    static final class Serve implements Callable<Integer> {
        @CommandLine.Mixin
        TargetOptions target = new TargetOptions();

        @CommandLine.Mixin
        DeviceOptions device = new DeviceOptions();

        @Option(
                names = "--config",
                paramLabel = "FILE",
                description = "serve every device FILE lists, one a line in the options of this command "
                        + "(--id N, the target and its options; no server-wide option such as --copy or --json), from "
                        + "this one process; SIGHUP applies a changed FILE: devices added, devices removed, a changed "
                        + "line refused (docs/cli.md). FILE must not be writable by others than its owner, root or the "
                        + "user running ubd. No --target with --config")
        java.nio.file.Path config;

        @Option(
                names = "--copy",
                defaultValue = "SYSCALL",
                description = "how data moves: SYSCALL (pread/pwrite "
                        + "on the queue's loop, default) or IO_URING (io_uring READ/WRITE)")
        DataCopy copy;

        // Boolean, null when not given: picocli's negatable options with a default of true left --no-X true.
        @Option(
                names = "--zero-copy",
                negatable = true,
                description = "serve READ and WRITE in place where the "
                        + "target can (a buffered file) and the kernel has AUTO_BUF_REG (Linux 6.16+); else data is copied "
                        + "(default: on)")
        Boolean zeroCopy;

        @Option(
                names = "--single-issuer",
                negatable = true,
                description = "set up the queue rings with "
                        + "SINGLE_ISSUER and DEFER_TASKRUN, as Netty does by default (default: on)")
        Boolean singleIssuer;

        boolean zeroCopy() {
            return zeroCopy == null || zeroCopy;
        }

        boolean singleIssuer() {
            return singleIssuer == null || singleIssuer;
        }

        @Option(
                names = "--status",
                negatable = true,
                description = "show a live line (IOPS, MB/s, in flight) "
                        + "refreshed every second (default: when stdout is a terminal)")
        Boolean status;

        @Option(names = "--json", description = START_JSON_HELP)
        boolean json;

        @Option(names = "--lock-memory", description = LOCK_MEMORY_HELP)
        boolean lockMemory;

        @Override
        public Integer call() throws InterruptedException {
            if (config != null) {
                if (target.target != null) {
                    throw new UsageError("--config and --target exclude each other: the file names each device's "
                            + "target (one device a line)");
                }
                return ConfiguredDevices.serve(config, this::server, json);
            }
            if (target.target == null) {
                throw new UsageError("give --target NAME (null, memory, file, nbd, rbd, mirror, stripe or concat), or "
                        + "--config FILE");
            }
            TargetDevice.Opened opened = TargetDevice.open(target, device);
            UbdServer server;
            try {
                server = server();
            } catch (RuntimeException e) {
                target.closeAll();
                throw e;
            }
            TargetDevice served;
            try {
                served = opened.serveOn(server);
            } catch (RuntimeException e) {
                server.close();
                throw e;
            }
            try {
                return serveUntilSignalled(
                        server,
                        served.device,
                        target.describe(),
                        served.size,
                        statusWanted(status, json),
                        device.handover,
                        json);
            } finally {
                served.release();
            }
        }

        private UbdServer server() {
            return UbdServer.builder()
                    .dataCopy(copy)
                    .zeroCopy(zeroCopy())
                    .lockMemory(lockMemory)
                    .ringConfig(new IoUringIoHandlerConfig().setSingleIssuer(singleIssuer()))
                    .build();
        }
    }

    /** The help of {@code --json}, the same on {@code serve} and {@code recover}. */
    static final String START_JSON_HELP = "print the start line as one JSON object: event (\"serving\"), id, "
            + "block_device, char_device, target, size_bytes, queues, depth, handover, pid (stable; new fields may be "
            + "added); no status line unless --status";

    /** The help of {@code --lock-memory}, the same on {@code serve} and {@code recover}. */
    static final String LOCK_MEMORY_HELP = "lock the whole process's memory (mlockall), so that none of the server "
            + "is reclaimed or swapped out under memory pressure; needs CAP_IPC_LOCK (root) or RLIMIT_MEMLOCK "
            + "unlimited (ulimit -l unlimited), else exit status 4. Run the JVM with a fixed, pre-touched heap: "
            + "java -Xms256m -Xmx256m -XX:+AlwaysPreTouch -XX:MaxDirectMemorySize=256m ... (docs/memory-pressure.md)";

    /** The device's capacity: --size, else the backend's size rounded down to 4 KiB. */
    static long capacity(TargetOptions target, BlockBackend backend) {
        // A mirror's --size only creates missing replica files: the device is what is left after its metadata.
        long size = target.size > 0 && target.target != TargetOptions.Target.MIRROR
                ? target.size
                : backend.size() / 4096 * 4096;
        if (size <= 0) {
            throw new UsageError(target.describe() + " does not know its size: give --size");
        }
        if (backend.size() > 0 && size > backend.size()) {
            throw new UsageError("--size " + size + " is larger than " + target.describe() + " (" + backend.size()
                    + " bytes)"
                    + (target.target == TargetOptions.Target.FILE
                            ? ": give a smaller --size, or add --grow " + "to extend the file"
                            : ""));
        }
        return size;
    }

    /**
     * Prints the device line, waits for SIGINT or SIGTERM (with the live status line if {@code status}), then stops
     * and deletes the device, or with {@code handoverAsked} (and a device with QUIESCE) quiesces it and leaves it for
     * {@code ubd recover}.
     */
    /**
     * The device {@code id} when it exists, was added recoverable and has no live server, so that {@code serve --id N
     * --recovery MODE} recovers it; null when there is no such device. A device whose server is alive, or that cannot
     * be recovered, is refused with what to do.
     */
    static DeviceInfo leftByADeadServer(UbdServer server, int id) {
        DeviceInfo d = server.control()
                .deviceInfo(id)
                .onErrorResume(UbdNoSuchDeviceException.class, e -> Mono.empty())
                .block(Duration.ofMinutes(1));
        if (d == null) {
            return null;
        }
        if (serverAlive(d)) {
            throw new UbdDeviceBusyException("device " + id + " is served by process " + d.serverPid()
                    + ": stop that server first, or choose another --id");
        }
        if (!d.has(UblkFeature.USER_RECOVERY)) {
            throw new UbdDeviceBusyException("device " + id + " exists with no server but was not added recoverable, "
                    + "so it cannot be taken over: `ubd remove " + id + "` first, then serve it again");
        }
        return d;
    }

    /** The live status line as asked; with --json only when asked by name, so that stdout stays JSON lines. */
    static boolean statusWanted(Boolean status, boolean json) {
        return json ? Boolean.TRUE.equals(status) : StatusLine.wanted(status);
    }

    /** The start line of {@code serve --json} and {@code recover --json}: one JSON object (see --json's help). */
    static String startJson(UbdDevice device, String target, long size, boolean handover) {
        DeviceInfo info = device.info();
        return "{\"event\": \"serving\", \"id\": " + device.id() + ", \"block_device\": "
                + DeviceListing.string(device.blockDevicePath()) + ", \"char_device\": "
                + DeviceListing.string(info.charDevicePath()) + ", \"target\": " + DeviceListing.string(target)
                + ", \"size_bytes\": " + size + ", \"queues\": " + info.queues() + ", \"depth\": " + info.depth()
                + ", \"handover\": " + handover + ", \"pid\": "
                + ProcessHandle.current().pid() + "}";
    }

    /** The start line of a device without --json: its block device, target, size and geometry. */
    static String startLine(UbdDevice device, String target, long size) {
        DeviceInfo info = device.info();
        return "serving " + device.blockDevicePath() + ": " + target + ", " + size + " bytes, " + info.queues()
                + " queue(s) x " + info.depth() + " tags";
    }

    static int serveUntilSignalled(
            UbdServer server,
            UbdDevice device,
            String target,
            long size,
            boolean status,
            boolean handoverAsked,
            boolean json)
            throws InterruptedException {
        CountDownLatch signalled = new CountDownLatch(1);
        // Handle SIGINT and SIGTERM ourselves, so that a clean stop exits with 0 rather than 128+signal.
        for (String name : List.of("INT", "TERM")) {
            sun.misc.Signal.handle(new sun.misc.Signal(name), sig -> signalled.countDown());
        }
        DeviceInfo info = device.info();
        // Only a device with QUIESCE can be handed over (a recovered one may lack it): it is then stopped as usual.
        boolean handover = handoverAsked && info.has(UblkFeature.QUIESCE);
        System.out.println(
                json
                        ? startJson(device, target, size, handover)
                        : startLine(device, target, size) + " (SIGINT or SIGTERM to "
                                + (handover ? "hand it over" : "stop") + ")");
        System.out.flush();
        StatusLine line = status ? StatusLine.start(device.queues(), System.out) : null;
        try {
            signalled.await();
        } finally {
            if (line != null) {
                line.close();
            }
        }
        try {
            return stop(device, handover);
        } finally {
            server.close();
        }
    }

    /**
     * Stops and deletes {@code device}, or with {@code handover} quiesces it and leaves it for {@code ubd recover} (a
     * failed hand-over stops it instead); prints what was done. {@return 0, or {@link ExitCodes#FAILURE} when it
     * failed}
     */
    static int stop(UbdDevice device, boolean handover) {
        if (handover) {
            try {
                device.quiesce().block(Duration.ofMinutes(2));
                System.out.println("handed over " + device.blockDevicePath() + ": device " + device.id() + " waits "
                        + "for `ubd recover --id " + device.id() + "`");
                return 0;
            } catch (RuntimeException e) {
                System.err.println("ubd: handing " + device.blockDevicePath() + " over failed: " + ExitCodes.message(e)
                        + "; stopping it instead");
                device.close().onErrorResume(x -> Mono.empty()).block(Duration.ofMinutes(2));
                return ExitCodes.FAILURE;
            }
        }
        try {
            device.close().block(Duration.ofMinutes(2));
            long ok =
                    device.queues().stream().mapToLong(q -> q.completedCount()).sum();
            long failed =
                    device.queues().stream().mapToLong(q -> q.failedCount()).sum();
            System.out.println("stopped " + device.blockDevicePath() + " after " + ok + " requests (" + failed
                    + " failed); device " + device.id() + " deleted");
            return 0;
        } catch (RuntimeException e) {
            System.err.println("ubd: stopping " + device.blockDevicePath() + " failed: " + ExitCodes.message(e));
            return ExitCodes.FAILURE;
        }
    }

    @Command(
            name = "recover",
            description = "Take over a device whose server died (added with --recoverable), serve "
                    + "it from a target until SIGINT or SIGTERM, then stop and delete it.",
            footer = {"", "Examples:", "  ubd recover --id 3 --target file --file /var/lib/disk.img"})
    static final class Recover implements Callable<Integer> {
        @Option(names = "--id", required = true, description = "the device id")
        int id;

        @CommandLine.Mixin
        TargetOptions target = new TargetOptions();

        @Option(
                names = "--status",
                negatable = true,
                description = "show a live line (IOPS, MB/s, in flight) "
                        + "refreshed every second (default: when stdout is a terminal)")
        Boolean status;

        @Option(
                names = "--handover",
                description = "on SIGINT or SIGTERM, quiesce the device and leave it for the "
                        + "next `ubd recover` instead of stopping and deleting it (the device must have been served with "
                        + "--handover)")
        boolean handover;

        @Option(names = "--json", description = START_JSON_HELP)
        boolean json;

        @Option(names = "--lock-memory", description = LOCK_MEMORY_HELP)
        boolean lockMemory;

        @Override
        public Integer call() throws InterruptedException {
            if (target.create > 0) {
                throw new UsageError("recover never creates a file: it takes over a device whose data exists; drop "
                        + "--create (and check that --file names the target the device was served from)");
            }
            UbdServer server = UbdServer.builder().lockMemory(lockMemory).build();
            try {
                long size = server.control()
                        .getParams(id)
                        .block(Duration.ofMinutes(1))
                        .capacityBytes();
                if (target.size <= 0) {
                    target.size = size; // memory and null targets take the device's size
                }
                BlockBackend backend = target.open().block(Duration.ofMinutes(2));
                UbdDevice device = server.recover(id, backend).block(Duration.ofMinutes(2));
                if (handover && !device.info().has(UblkFeature.QUIESCE)) {
                    System.err.println("ubd: device " + id + " was not served with --handover (no QUIESCE): it will "
                            + "be stopped and deleted on SIGINT or SIGTERM");
                }
                return serveUntilSignalled(
                        server, device, target.describe(), size, statusWanted(status, json), handover, json);
            } catch (RuntimeException e) {
                server.close();
                throw e;
            } finally {
                target.closeAll();
            }
        }
    }

    @Command(
            name = "list",
            description = "List the ublk devices on this machine: id, state, queues, depth, server "
                    + "pid and block device; with -v also size and feature flags; with --json as JSON for scripts.",
            footer = {
                "",
                "Fields of --json (stable; new ones may be added):",
                "  {\"devices\": [{\"id\", \"state\", \"queues\", \"depth\", \"server_pid\",",
                "                \"block_device\", \"char_device\",",
                "                with -v: \"size_bytes\", \"logical_block_size\",",
                "                \"physical_block_size\", \"max_io_bytes\", \"read_only\",",
                "                \"flags\", \"owner_uid\", \"owner_gid\"}]}",
                "",
                "Examples:",
                "  ubd list",
                "  ubd list -v",
                "  ubd list --json | jq -r '.devices[] | select(.state == \"DEAD\") | .id'"
            })
    static final class ListDevices implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(
                names = {"-v", "--verbose"},
                description = "add size (GET_PARAMS), feature flags and owner")
        boolean verbose;

        @Option(names = "--json", description = "print JSON (see below) instead of a table")
        boolean json;

        @Override
        public Integer call() {
            try (UbdControl control = UbdControl.open()) {
                List<DeviceListing.Row> rows = control.listDevices()
                        .concatMap(d -> verbose
                                ? control.getParams(d.id())
                                        .map(p -> new DeviceListing.Row(d, p))
                                        .onErrorResume(e -> Mono.just(new DeviceListing.Row(d, null)))
                                : Mono.just(new DeviceListing.Row(d, (DeviceParams) null)))
                        .collectList()
                        .block(Duration.ofMinutes(1));
                PrintWriter out = spec.commandLine().getOut();
                out.print(json ? DeviceListing.json(rows, verbose) : DeviceListing.table(rows, verbose));
                out.flush();
            }
            return ExitCodes.OK;
        }
    }

    @Command(
            name = "remove",
            description = "Stop and delete devices, e.g. ones left by a server that died.",
            footer = {
                "",
                "Examples:",
                "  ubd remove 3",
                "  ubd remove 3 4 7",
                "  ubd remove --all           # devices whose server died; --all --force: live ones too",
                "  ubd list --json | jq -r '.devices[] | select(.server_pid <= 0) | .id' | xargs -r ubd remove"
            })
    static final class Remove implements Callable<Integer> {
        @Parameters(description = "device ids", paramLabel = "ID")
        List<Integer> ids = List.of();

        @Spec
        CommandSpec spec;

        @Option(
                names = "--all",
                description = "every ublk device on this machine whose server is not running "
                        + "(with --force: every one, live servers' too)")
        boolean all;

        @Option(names = "--force", description = "with --all: also remove devices whose server is alive")
        boolean force;

        @Option(
                names = "--async",
                description = "do not wait for the device's holders (mounts, open files): the "
                        + "block device goes away at once and the id is freed when the last holder lets go")
        boolean async;

        @Override
        public Integer call() {
            if (all == !ids.isEmpty()) {
                throw new UsageError(
                        all
                                ? "give device ids or --all, not both"
                                : "give the ids of the devices to " + "remove, or --all (ubd list shows them)");
            }
            if (force && !all) {
                throw new UsageError("--force goes with --all: named devices are removed whatever serves them");
            }
            try (UbdControl control = UbdControl.open()) {
                List<Integer> targets = ids;
                if (all) {
                    targets = new ArrayList<>();
                    for (DeviceInfo d : control.listDevices().collectList().block(Duration.ofMinutes(1))) {
                        if (!force && serverAlive(d)) {
                            spec.commandLine()
                                    .getOut()
                                    .println("left device " + d.id() + ": its server (pid " + d.serverPid()
                                            + ") is running; stop it, or give --all --force");
                        } else {
                            targets.add(d.id());
                        }
                    }
                }
                for (int id : targets) {
                    (async ? control.removeDeviceAsync(id) : control.removeDevice(id)).block(Duration.ofMinutes(1));
                    spec.commandLine().getOut().println("removed device " + id);
                    spec.commandLine().getOut().flush();
                }
            }
            return ExitCodes.OK;
        }
    }

    /**
     * Whether the process that started a device still runs (so that {@code remove --all} leaves it). A pid reused by
     * another process counts as alive: the device is then left, never removed by mistake.
     *
     * @param d the device
     * @return true when its server's pid names a live process
     */
    static boolean serverAlive(DeviceInfo d) {
        return d.serverPid() > 0
                && ProcessHandle.of(d.serverPid()).map(ProcessHandle::isAlive).orElse(false);
    }

    @Command(
            name = "resize",
            description =
                    "Change the size of a started device while it serves (UPDATE_SIZE, "
                            + "Linux 6.16+; `ubd serve` adds devices with it whenever the kernel has it). The new size must be a "
                            + "multiple of the device's logical block size, and within what its target stores: the serving process "
                            + "refuses requests beyond its target's end (serve a larger file with a smaller --size to grow later).",
            footer = {
                "",
                "Examples:",
                "  ubd resize 3 2G",
                "  ubd resize 3 $((3 * 1024 * 1024 * 1024))",
                "",
                "A device that is not started, or was added without UPDATE_SIZE, is refused before the kernel "
                        + "sees the command (6.18 would oops on a device without a disk)."
            })
    static final class Resize implements Callable<Integer> {
        @Parameters(index = "0", description = "the device id", paramLabel = "ID")
        int id;

        @Parameters(
                index = "1",
                description = "the new size: bytes, or with K, M, G, T (powers of 1024)",
                paramLabel = "SIZE",
                converter = TargetOptions.SizeConverter.class)
        long size;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            try (UbdControl control = UbdControl.open()) {
                control.updateSize(id, size).block(Duration.ofMinutes(1));
                spec.commandLine().getOut().println("resized device " + id + " to " + size + " bytes");
                spec.commandLine().getOut().flush();
            }
            return ExitCodes.OK;
        }
    }

    @Command(
            name = "features",
            description = "Show the ublk features of the running kernel.",
            footer = {"", "Examples:", "  ubd features", "  ubd features | grep -q USER_COPY || echo 'kernel too old'"})
    static final class Features implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(
                names = "--json",
                description = "print {\"mask\": \"0x...\", \"features\": [NAME, ...], \"unknown_bits\": \"0x...\"}: "
                        + "the kernel's GET_FEATURES answer, the features it names, and the bits this ubd has no name "
                        + "for")
        boolean json;

        @Override
        public Integer call() {
            try (UbdControl control = UbdControl.open()) {
                long mask = control.featureMask().block(Duration.ofMinutes(1));
                Set<UblkFeature> features = UblkFeature.fromMask(mask);
                PrintWriter out = spec.commandLine().getOut();
                out.println(json ? featuresJson(mask, features) : features);
                out.flush();
            }
            return ExitCodes.OK;
        }

        static String featuresJson(long mask, Set<UblkFeature> features) {
            long named = 0;
            StringBuilder names = new StringBuilder();
            for (UblkFeature f : features) {
                named |= f.mask();
                names.append(names.isEmpty() ? "" : ", ").append(DeviceListing.string(f.name()));
            }
            return "{\"mask\": \"0x" + Long.toHexString(mask) + "\", \"features\": [" + names
                    + "], \"unknown_bits\": \"0x" + Long.toHexString(mask & ~named) + "\"}";
        }
    }

    @Command(
            name = "completion",
            description = "Print a bash completion script for ubd (verbs, options, targets).",
            footer = {
                "",
                "Examples:",
                "  alias ubd='java -jar /path/to/ubd.jar'      # completion is for the command named ubd",
                "  source <(java -jar samples/target/ubd.jar completion)",
                "  java -jar ubd.jar completion > /etc/bash_completion.d/ubd"
            })
    static final class Completion implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            out.print(AutoComplete.bash("ubd", spec.root().commandLine()));
            out.flush();
            return ExitCodes.OK;
        }
    }
}

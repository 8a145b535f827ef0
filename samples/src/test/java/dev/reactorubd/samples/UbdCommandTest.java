package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.reactorubd.InvalidDeviceSpecException;
import dev.reactorubd.UbdDeviceBusyException;
import dev.reactorubd.UbdDeviceStateException;
import dev.reactorubd.UbdException;
import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.UbdNoSuchDeviceException;
import dev.reactorubd.UbdPermissionException;
import dev.reactorubd.UbdTimeoutException;
import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceParams;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.sys.UblkParams;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The command line's contract with shell users: exit statuses, one-line errors, help, completion and JSON. */
class UbdCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Run(int status, String out, String err) {}

    private static Run run(String... args) {
        CommandLine cmd = UbdCommand.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cmd.setOut(new PrintWriter(out));
        cmd.setErr(new PrintWriter(err));
        int status = cmd.execute(args);
        return new Run(status, out.toString(), err.toString());
    }

    private static UbdCommand.Serve serve(String... args) {
        CommandLine cmd = UbdCommand.commandLine();
        cmd.parseArgs(args);
        return (UbdCommand.Serve) cmd.getSubcommands().get("serve").getCommand();
    }

    @Test
    void zeroCopyAndSingleIssuerAreOnByDefaultAndTheirNoFormsTurnThemOff() {
        UbdCommand.Serve defaults = serve("serve", "--target", "null", "--size", "1M");
        assertTrue(defaults.zeroCopy() && defaults.singleIssuer());
        UbdCommand.Serve on = serve("serve", "--target", "null", "--size", "1M", "--zero-copy", "--single-issuer");
        assertTrue(on.zeroCopy() && on.singleIssuer());
        UbdCommand.Serve off =
                serve("serve", "--target", "null", "--size", "1M", "--no-zero-copy", "--no-single-issuer");
        assertFalse(off.zeroCopy(), "--no-zero-copy");
        assertFalse(off.singleIssuer(), "--no-single-issuer");
    }

    @Test
    void featuresJsonNamesTheMaskTheFeaturesAndTheBitsWithoutAName() throws Exception {
        long unknown = 1L << 62;
        long mask = UblkFeature.USER_COPY.mask() | UblkFeature.QUIESCE.mask() | unknown;
        JsonNode doc = JSON.readTree(UbdCommand.Features.featuresJson(mask, UblkFeature.fromMask(mask)));
        assertEquals("0x" + Long.toHexString(mask), doc.get("mask").asText());
        assertEquals("0x" + Long.toHexString(unknown), doc.get("unknown_bits").asText());
        List<String> names = new ArrayList<>();
        doc.get("features").forEach(n -> names.add(n.asText()));
        assertEquals(Set.of("USER_COPY", "QUIESCE"), Set.copyOf(names));
    }

    @Test
    void withJsonTheStatusLineComesOnlyWhenAskedFor() {
        assertFalse(UbdCommand.statusWanted(null, true), "--json alone: stdout stays JSON");
        assertTrue(UbdCommand.statusWanted(Boolean.TRUE, true), "--json --status");
        assertFalse(UbdCommand.statusWanted(Boolean.FALSE, false));
        assertTrue(serve("serve", "--target", "null", "--size", "1M", "--json").json);
    }

    @Test
    void removeAllLeavesDevicesWhoseServerIsAlive() throws Exception {
        assertTrue(
                UbdCommand.serverAlive(
                        info(1, UblkDevState.LIVE, (int) ProcessHandle.current().pid())),
                "this JVM serves it");
        assertFalse(UbdCommand.serverAlive(info(2, UblkDevState.DEAD, -1)), "no server recorded");
        assertFalse(UbdCommand.serverAlive(info(3, UblkDevState.DEAD, 0)));
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor();
        assertFalse(UbdCommand.serverAlive(info(4, UblkDevState.LIVE, (int) gone.pid())), "its server exited");
    }

    private static void assertOneErrorLine(Run r) {
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), r.err());
        assertTrue(lines.getFirst().startsWith("ubd: "), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    private static DeviceInfo info(int id, UblkDevState state, int pid, UblkFeature... features) {
        return new DeviceInfo(id, 2, 64, state, 512 << 10, pid, UblkFeature.toMask(Set.of(features)), 0, 0);
    }

    private static DeviceParams params(long size, boolean readOnly) {
        return new DeviceParams(
                UblkParams.TYPE_BASIC,
                readOnly ? UblkParams.ATTR_READ_ONLY : 0,
                512,
                4096,
                size,
                512 << 10,
                null,
                "",
                "");
    }

    @Test
    void usageErrorsExitWith2AndOneLineNamingTheHelp() {
        Run unknown = run("list", "--bogus");
        assertEquals(ExitCodes.USAGE, unknown.status());
        assertOneErrorLine(unknown);
        assertTrue(
                unknown.err().contains("Unknown option: '--bogus'")
                        && unknown.err().contains("'ubd list --help'"),
                unknown.err());

        Run noVerb = run();
        assertEquals(ExitCodes.USAGE, noVerb.status());
        assertOneErrorLine(noVerb);
        assertTrue(noVerb.err().contains("give a verb"), noVerb.err());

        Run noIds = run("remove");
        assertEquals(ExitCodes.USAGE, noIds.status());
        assertOneErrorLine(noIds);
        assertTrue(noIds.err().contains("give the ids of the devices to remove, or --all"), noIds.err());
        assertEquals(ExitCodes.USAGE, run("remove", "--all", "3").status());
        Run forceIds = run("remove", "--force", "3");
        assertEquals(ExitCodes.USAGE, forceIds.status());
        assertTrue(forceIds.err().contains("--force goes with --all"), forceIds.err());

        Run badNumber = run("remove", "three");
        assertEquals(ExitCodes.USAGE, badNumber.status());
        assertOneErrorLine(badNumber);

        Run badSpec = run("serve", "--target", "memory", "--size", "8M", "--queues", "0");
        assertEquals(ExitCodes.USAGE, badSpec.status(), badSpec.err());
        assertOneErrorLine(badSpec);
    }

    @Test
    void resizeNeedsAnIdAndASizeItCanParseAndHandoverARecoverableDevice() {
        for (String[] line : new String[][] {
            {"resize"}, {"resize", "3"}, {"resize", "three", "1G"}, {"resize", "3", "lots"}, {"resize", "3", "1G", "2G"}
        }) {
            Run r = run(line);
            assertEquals(ExitCodes.USAGE, r.status(), String.join(" ", line) + ": " + r.err());
            assertOneErrorLine(r);
        }
        Run handover = run("serve", "--target", "memory", "--size", "8M", "--handover");
        assertEquals(ExitCodes.USAGE, handover.status(), handover.err());
        assertOneErrorLine(handover);
        assertTrue(handover.err().contains("--handover needs --recovery"), handover.err());
        Run help = run("resize", "--help");
        assertTrue(help.out().contains("UPDATE_SIZE") && help.out().contains("ubd resize 3 2G"), help.out());
    }

    /** Found by UbdCommandProperties: these printed an exception's type, and one exited with 1 as if at run time. */
    @Test
    void argumentsATargetRefusesAreUsageErrorsInPlainWords() {
        String[][] lines = {
            {"serve", "--target", "nbd", "--uri", "nbd://"},
            {"serve", "--target", "nbd", "--uri", "nbd://127.0.0.1:1/x", "--request-timeout", "0ms"},
            {"serve", "--target", "memory", "--size", "8M", "--timeout", "-1s"},
            {"serve", "--target", "stripe", "--part", "memory:1M", "--part", "memory:1M", "--chunk", "1T"},
            {"serve", "--target", "stripe", "--part", "memory:1M", "--part", "memory:1M", "--chunk", "511"},
            {"serve", "--target", "memory", "--size", "8M", "--cache", "1"}
        };
        for (String[] line : lines) {
            Run r = run(line);
            assertEquals(ExitCodes.USAGE, r.status(), String.join(" ", line) + ": " + r.err());
            assertOneErrorLine(r);
            assertFalse(r.err().matches("(?s)ubd: \\w+(Exception|Error).*"), r.err());
        }
    }

    @Test
    void withoutUblkTheKernelCommandsExitWith3AndSayHowToLoadIt() {
        assumeFalse(Files.exists(Path.of("/dev/ublk-control")), "this machine has ublk");
        for (String verb : List.of("list", "features")) {
            Run r = run(verb);
            assertEquals(ExitCodes.NO_UBLK, r.status(), r.err());
            assertOneErrorLine(r);
            assertTrue(r.err().contains("modprobe ublk_drv"), r.err());
        }
    }

    @Test
    void errorsMapToTheDocumentedStatuses() {
        assertEquals(2, ExitCodes.of(new UbdCommand.UsageError("x")));
        assertEquals(2, ExitCodes.of(new InvalidDeviceSpecException("queues", "x")));
        assertEquals(2, ExitCodes.of(new TargetOptions.TargetUnavailable(new UbdException("/a.img does not exist"))));
        assertEquals(2, ExitCodes.of(new UbdException("SET_PARAMS was refused as invalid", 22)));
        assertEquals(1, ExitCodes.of(new UbdException("READ failed", 5)));
        assertEquals(3, ExitCodes.of(new UbdModuleNotLoadedException("x")));
        assertEquals(3, ExitCodes.of(new UbdUnsupportedException("x")));
        assertEquals(4, ExitCodes.of(new UbdPermissionException("x")));
        assertEquals(4, ExitCodes.of(new TargetOptions.TargetUnavailable(new UbdPermissionException("x"))));
        assertEquals(5, ExitCodes.of(new UbdNoSuchDeviceException("x")));
        assertEquals(5, ExitCodes.of(new UbdDeviceBusyException("x")));
        assertEquals(5, ExitCodes.of(new UbdDeviceStateException("device 3 is DEAD")));
        assertEquals(1, ExitCodes.of(new UbdTimeoutException("x")));
        assertEquals(1, ExitCodes.of(new IllegalStateException("a bug")));
        assertEquals("IllegalStateException: a bug", ExitCodes.message(new IllegalStateException("a bug")));
        assertEquals(
                "/a.img does not exist",
                ExitCodes.message(new TargetOptions.TargetUnavailable(new UbdException("/a.img does not exist"))));
    }

    @Test
    void everyVerbsHelpHasExamplesAndTheExitStatuses() {
        for (String verb : List.of("serve", "recover", "list", "remove", "resize", "features", "completion")) {
            Run r = run(verb, "--help");
            assertEquals(0, r.status(), verb);
            assertTrue(r.out().contains("Examples:"), verb + ": " + r.out());
            assertTrue(
                    r.out().contains("Exit status:") && r.out().contains("permission denied: run as root"),
                    verb + ": " + r.out());
        }
        Run root = run("--help");
        assertTrue(root.out().contains("completion") && root.out().contains("Exit status:"), root.out());
    }

    @Test
    void completionIsABashScriptForEveryVerbAndTarget() {
        Run r = run("completion");
        assertEquals(0, r.status(), r.err());
        String script = r.out();
        assertTrue(script.contains("complete -F"), "registers a completion function");
        for (String word :
                List.of("serve", "recover", "list", "remove", "features", "--target", "--json", "mirror", "stripe")) {
            assertTrue(script.contains(word), word);
        }
    }

    @Test
    void completionScriptCompletesVerbsAndTargetsInBash() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/bin/bash")), "bash is installed");
        Path script = Files.createTempFile("ubd-completion", ".bash");
        try {
            Files.writeString(script, run("completion").out());
            String probe = "source " + script + " 2>/dev/null\n"
                    + "COMP_WORDS=(ubd se); COMP_CWORD=1; COMP_LINE='ubd se'; COMP_POINT=6\n"
                    + "_complete_ubd 2>/dev/null; echo \"verbs=${COMPREPLY[*]}\"\n"
                    + "COMP_WORDS=(ubd serve --target st); COMP_CWORD=3; COMP_LINE='ubd serve --target st'; COMP_POINT=21\n"
                    + "_complete_ubd 2>/dev/null; echo \"targets=${COMPREPLY[*]}\"\n";
            Process bash = new ProcessBuilder("/bin/bash", "--norc", "-c", probe)
                    .redirectErrorStream(true)
                    .start();
            String out = new String(bash.getInputStream().readAllBytes());
            assertEquals(0, bash.waitFor(), out);
            assertTrue(out.contains("verbs=serve\n"), out);
            assertTrue(out.contains("targets=stripe\n"), out);
        } finally {
            Files.deleteIfExists(script);
        }
    }

    @Test
    void jsonListingParsesWithStableFields() throws Exception {
        List<DeviceListing.Row> rows = List.of(
                new DeviceListing.Row(
                        info(0, UblkDevState.LIVE, 1234, UblkFeature.USER_COPY, UblkFeature.USER_RECOVERY),
                        params(64L << 20, false)),
                new DeviceListing.Row(info(7, UblkDevState.DEAD, -1), null));

        JsonNode plain = JSON.readTree(DeviceListing.json(rows, false));
        assertEquals(2, plain.get("devices").size());
        JsonNode d0 = plain.get("devices").get(0);
        assertEquals(
                List.of("id", "state", "queues", "depth", "server_pid", "block_device", "char_device"), fieldNames(d0));
        assertEquals(0, d0.get("id").asInt());
        assertEquals("LIVE", d0.get("state").asText());
        assertEquals(1234, d0.get("server_pid").asInt());
        assertEquals("/dev/ublkb0", d0.get("block_device").asText());

        JsonNode verbose = JSON.readTree(DeviceListing.json(rows, true));
        JsonNode v0 = verbose.get("devices").get(0);
        assertEquals(
                List.of(
                        "id",
                        "state",
                        "queues",
                        "depth",
                        "server_pid",
                        "block_device",
                        "char_device",
                        "size_bytes",
                        "logical_block_size",
                        "physical_block_size",
                        "max_io_bytes",
                        "read_only",
                        "flags",
                        "owner_uid",
                        "owner_gid"),
                fieldNames(v0));
        assertEquals(64L << 20, v0.get("size_bytes").asLong());
        assertEquals("[\"USER_RECOVERY\",\"USER_COPY\"]", v0.get("flags").toString());
        assertFalse(v0.get("read_only").asBoolean());
        JsonNode v1 = verbose.get("devices").get(1);
        assertTrue(v1.get("size_bytes").isNull(), "unknown size is null");
        assertEquals("DEAD", v1.get("state").asText());

        assertEquals(
                0,
                JSON.readTree(DeviceListing.json(List.of(), true))
                        .get("devices")
                        .size());
        assertEquals("\"a\\\"b\\\\c\\n\\u0001\"", DeviceListing.string("a\"b\\c\n\u0001"));
        assertEquals(
                "a\"b\\c\n\u0001",
                JSON.readTree(DeviceListing.string("a\"b\\c\n\u0001")).asText());
    }

    @Test
    void tableListingHasAHeaderAndNamedFlags() {
        List<DeviceListing.Row> rows = List.of(new DeviceListing.Row(
                info(3, UblkDevState.LIVE, 42, UblkFeature.USER_COPY), params(1536L << 20, true)));
        String verbose = DeviceListing.table(rows, true);
        List<String> lines = verbose.lines().toList();
        assertEquals(2, lines.size(), verbose);
        assertEquals(
                List.of("ID", "STATE", "QUEUES", "DEPTH", "SIZE", "PID", "DEVICE", "FLAGS"),
                List.of(lines.get(0).split(" +")));
        assertEquals(
                List.of("3", "LIVE", "2", "64", "1.5G", "42", "/dev/ublkb3", "user_copy,read_only"),
                List.of(lines.get(1).split(" +")));
        assertEquals(
                List.of("3", "LIVE", "2", "64", "42", "/dev/ublkb3"),
                List.of(DeviceListing.table(rows, false).lines().toList().get(1).split(" +")));
        assertEquals("no ublk devices\n", DeviceListing.table(List.of(), true));
        assertEquals("64M", DeviceListing.humanSize(64L << 20));
        assertEquals("4K", DeviceListing.humanSize(4096));
        assertEquals("1000", DeviceListing.humanSize(1000));
    }

    @Test
    void statusLineShowsRatesAndInFlight() {
        assertEquals(
                "12,345 IOPS  48.2 MB/s  in flight 17  (1,234,567 requests, 2 failed)",
                StatusLine.format(12345, 48.2e6, 17, 1234567, 2));
        assertTrue(StatusLine.wanted(true));
        assertFalse(StatusLine.wanted(false));
        assertFalse(StatusLine.wanted(null), "tests do not run on a terminal");
    }

    private static List<String> fieldNames(JsonNode n) {
        List<String> names = new ArrayList<>();
        n.fieldNames().forEachRemaining(names::add);
        return names;
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigFileTest {
    @Test
    void linesQuotesContinuationsAndCommentsParseToOneDeviceALine() {
        List<ConfigFile.DeviceLine> lines = ConfigFile.parse("f", """
                # devices
                --id 3 --target memory --size 8M --queues 2   # a comment after the words

                --id 4 --target file --file '/var/lib/my disk.img' \\
                       --recovery REISSUE --handover
                --id 5 --target concat --part "memory:1M" --part memory:1M --depth 32
                """);
        assertEquals(
                List.of(3, 4, 5), lines.stream().map(ConfigFile.DeviceLine::id).toList());
        assertEquals(
                List.of(2, 4, 6),
                lines.stream().map(ConfigFile.DeviceLine::line).toList());
        assertEquals(2, lines.get(0).device().queues);
        assertEquals(8L << 20, lines.get(0).target().size);
        assertEquals(Path.of("/var/lib/my disk.img"), lines.get(1).target().file);
        assertEquals(RecoveryMode.REISSUE, lines.get(1).device().recoveryMode());
        assertTrue(lines.get(1).device().handover);
        assertEquals(32, lines.get(2).device().depth);
        assertEquals(List.of("memory:1M", "memory:1M"), lines.get(2).target().parts);
    }

    @Test
    void aLineWithoutIdOrTargetAServerOptionADuplicateIdOrAnOpenQuoteNamesItsLine() {
        String[][] cases = {
            {"--target memory --size 8M\n", "line 1: no --id"},
            {"\n--id 1 --size 8M\n", "line 2: no --target"},
            {"--id 1 --target memory --size 8M --copy IO_URING\n", "line 1: Unknown option"},
            {
                "--id 1 --target memory --size 8M\n--id 1 --target null --size 1M\n",
                "line 2: device 1 is already on line 1"
            },
            {"--id 1 --target file --file '/a\n", "line 1: the quote ' is not closed"},
        };
        for (String[] c : cases) {
            ConfigFile.Invalid e = assertThrows(ConfigFile.Invalid.class, () -> ConfigFile.parse("f", c[0]));
            assertTrue(e.getMessage().startsWith("f: " + c[1]), e.getMessage());
            assertEquals(ExitCodes.USAGE, ExitCodes.of(e));
        }
    }

    @Test
    void aFileOthersCanWriteIsRefused(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("devices.conf");
        Files.writeString(f, "--id 1 --target memory --size 8M\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-r--r--"));
        assertEquals(1, ConfigFile.read(f).size());
        for (String mode : List.of("rw-rw-r--", "rw-r--rw-")) {
            Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
            ConfigFile.Invalid e = assertThrows(ConfigFile.Invalid.class, () -> ConfigFile.read(f));
            assertTrue(e.getMessage().contains("chmod go-w"), e.getMessage());
        }
        ConfigFile.Invalid dirRefused = assertThrows(ConfigFile.Invalid.class, () -> ConfigFile.read(dir));
        assertTrue(dirRefused.getMessage().endsWith("not a regular file"), dirRefused.getMessage());
    }

    @Test
    void aReloadAddsNewIdsRemovesMissingOnesAndRefusesChangedLines() {
        List<ConfigFile.DeviceLine> wanted = ConfigFile.parse("f", """
                --id 1 --target memory --size 8M
                --id 2 --target memory --size 16M
                --id 4 --target null --size 1M
                """);
        Map<Integer, List<String>> served = Map.of(
                1, List.of("--id", "1", "--target", "memory", "--size", "8M"),
                2, List.of("--id", "2", "--target", "memory", "--size", "8M"),
                3, List.of("--id", "3", "--target", "null", "--size", "1M"));
        ReloadPlan plan = ReloadPlan.of(served, wanted);
        assertEquals(
                List.of(4), plan.add().stream().map(ConfigFile.DeviceLine::id).toList());
        assertEquals(List.of(3), plan.remove());
        assertEquals(
                List.of(2),
                plan.refused().stream().map(ConfigFile.DeviceLine::id).toList());
        assertEquals(1, plan.unchanged());
    }

    @Test
    void configAndTargetExcludeEachOtherAndServeNeedsOne() {
        UbdCommand.UsageError both = assertThrows(
                UbdCommand.UsageError.class,
                () -> call("serve", "--config", "/nonexistent", "--target", "memory", "--size", "8M"));
        assertTrue(both.getMessage().contains("exclude each other"), both.getMessage());
        UbdCommand.UsageError none = assertThrows(UbdCommand.UsageError.class, () -> call("serve"));
        assertTrue(none.getMessage().contains("--config FILE"), none.getMessage());
        ConfigFile.Invalid missing =
                assertThrows(ConfigFile.Invalid.class, () -> call("serve", "--config", "/nonexistent/devices.conf"));
        assertTrue(missing.getMessage().startsWith("/nonexistent/devices.conf: cannot be read"), missing.getMessage());
    }

    private static void call(String... args) throws Exception {
        picocli.CommandLine cmd = UbdCommand.commandLine();
        picocli.CommandLine.ParseResult r = cmd.parseArgs(args);
        ((UbdCommand.Serve) r.subcommand().commandSpec().userObject()).call();
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** What the command line says to a user who gets the target options wrong: exit status 2 and what to write. */
class TargetOptionsTest {
    private record Run(int status, String err) {}

    private static Run run(String... args) {
        CommandLine cmd = UbdCommand.commandLine();
        StringWriter err = new StringWriter();
        cmd.setErr(new PrintWriter(err));
        cmd.setOut(new PrintWriter(new StringWriter()));
        int status = cmd.execute(args);
        return new Run(status, err.toString());
    }

    @Test
    void compositionsNeedTwoParts() {
        Run r = run("serve", "--target", "stripe", "--part", "memory:8M");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("--target stripe needs at least two --part SPEC options"), r.err());
    }

    @Test
    void eachTargetNamesWhatItNeeds() {
        assertTrue(run("serve", "--target", "memory").err().contains("needs --size"));
        assertTrue(run("serve", "--target", "file").err().contains("--target file needs --file PATH"));
        assertTrue(run("serve", "--target", "nbd").err().contains("--target nbd needs --uri"));
        Run bad = run("serve", "--target", "tape");
        assertEquals(2, bad.status());
        assertTrue(bad.err().contains("unknown target 'tape'"), bad.err());
    }

    @Test
    void aBadSpecSaysWhatSpecsLookLike() {
        Run r = run("serve", "--target", "mirror", "--replica", "memory:8M", "--replica", "floppy:/a");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("'floppy:/a' is not a target spec: write one of null:SIZE"), r.err());
    }

    @Test
    void aMissingFileSaysSo() {
        Run r = run("serve", "--target", "file", "--file", "/nonexistent/disk.img");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("/nonexistent/disk.img does not exist"), r.err());
    }

    @Test
    void aSizeAloneNeverCreatesOrGrowsAFile(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("missing.img");
        Run r = run("serve", "--target", "file", "--file", missing.toString(), "--size", "1M");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains(missing + " does not exist") && r.err().contains("--create SIZE"), r.err());
        assertFalse(Files.exists(missing), "--size created the file");
        Run part =
                run("serve", "--target", "concat", "--part", "file:" + missing, "--part", "memory:1M", "--size", "2M");
        assertEquals(2, part.status(), part.err());
        assertFalse(Files.exists(missing), "--size created a part's file");

        Path small = Files.write(dir.resolve("small.img"), new byte[1 << 20]);
        Run larger = run("serve", "--target", "file", "--file", small.toString(), "--size", "2M");
        assertEquals(2, larger.status(), larger.err());
        assertTrue(larger.err().contains("add --grow"), larger.err());
        assertEquals(1 << 20, Files.size(small), "--size extended the file");

        Run growWithoutSize = run("serve", "--target", "file", "--file", small.toString(), "--grow");
        assertEquals(2, growWithoutSize.status(), growWithoutSize.err());
        assertTrue(growWithoutSize.err().contains("--grow extends a shorter file to --size"), growWithoutSize.err());
    }

    @Test
    void createAndGrowAreAskedForByName(@TempDir Path dir) throws IOException {
        // The target opens before the device is added: the file is created (or grown) whatever the kernel then says.
        Path img = dir.resolve("new.img");
        run("serve", "--target", "file", "--file", img.toString(), "--create", "1M");
        assertEquals(1 << 20, Files.size(img), "--create SIZE creates a missing file");
        run("serve", "--target", "file", "--file", img.toString(), "--create", "4M");
        assertEquals(1 << 20, Files.size(img), "--create leaves an existing file as it is");
        run("serve", "--target", "file", "--file", img.toString(), "--size", "2M", "--grow");
        assertEquals(2 << 20, Files.size(img), "--grow extends it to --size");
    }

    @Test
    void recoverNeverCreatesAFile(@TempDir Path dir) {
        Path img = dir.resolve("gone.img");
        Run r = run("recover", "--id", "1", "--target", "file", "--file", img.toString(), "--create", "1M");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("recover never creates a file"), r.err());
        assertFalse(Files.exists(img));
    }

    @Test
    void whatAPathNamesIsCheckedBeforeItIsOpened(@TempDir Path dir) throws Exception {
        Run chr = run("serve", "--target", "file", "--file", "/dev/null");
        assertEquals(2, chr.status(), chr.err());
        assertTrue(
                chr.err().contains("/dev/null is a character device")
                        && chr.err().contains("FILE_TYPE"),
                chr.err());
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        Run f = run("serve", "--target", "file", "--file", fifo.toString(), "--read-only");
        assertEquals(2, f.status(), f.err());
        assertTrue(f.err().contains("is a FIFO"), f.err());
    }

    @Test
    void durations() {
        assertEquals(Duration.ofMillis(500), UbdCommand.parseDuration("500ms"));
        assertEquals(Duration.ofSeconds(30), UbdCommand.parseDuration("30s"));
        assertEquals(Duration.ofMinutes(2), UbdCommand.parseDuration("2m"));
        CommandLine.TypeConversionException e =
                assertThrows(CommandLine.TypeConversionException.class, () -> UbdCommand.parseDuration("soon"));
        assertTrue(e.getMessage().contains("is not a duration"), e.getMessage());
        // Found by UbdCommandProperties: zero, negative and overflowing durations got past the parser.
        for (String bad : new String[] {"0s", "0ms", "-1s", "-5m", "9999999999999999h"}) {
            assertThrows(CommandLine.TypeConversionException.class, () -> UbdCommand.parseDuration(bad), bad);
        }
    }
}

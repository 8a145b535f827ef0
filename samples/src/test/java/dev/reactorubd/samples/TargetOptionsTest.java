package dev.reactorubd.samples;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the command line says to a user who gets the target options wrong: exit status 2 and what to write. */
class TargetOptionsTest {
    private record Run(int status, String err) {
    }

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
    void durations() {
        assertEquals(Duration.ofMillis(500), UbdCommand.parseDuration("500ms"));
        assertEquals(Duration.ofSeconds(30), UbdCommand.parseDuration("30s"));
        assertEquals(Duration.ofMinutes(2), UbdCommand.parseDuration("2m"));
        CommandLine.TypeConversionException e = assertThrows(CommandLine.TypeConversionException.class,
                () -> UbdCommand.parseDuration("soon"));
        assertTrue(e.getMessage().contains("is not a duration"), e.getMessage());
        // Found by UbdCommandProperties: zero, negative and overflowing durations got past the parser.
        for (String bad : new String[] {"0s", "0ms", "-1s", "-5m", "9999999999999999h"}) {
            assertThrows(CommandLine.TypeConversionException.class, () -> UbdCommand.parseDuration(bad), bad);
        }
    }
}

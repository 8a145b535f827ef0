package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class SizeParsingTest {
    @Test
    void sizesWithUnits() {
        assertEquals(4096, UbdCommand.parseSize("4096"));
        assertEquals(512 * 1024, UbdCommand.parseSize("512K"));
        assertEquals(64L << 20, UbdCommand.parseSize("64M"));
        assertEquals(2L << 30, UbdCommand.parseSize("2g"));
    }

    @Test
    void badSizesSayWhatToWrite() {
        CommandLine.TypeConversionException e =
                assertThrows(CommandLine.TypeConversionException.class, () -> UbdCommand.parseSize("64MB"));
        assertEquals("'64MB' is not a size: write bytes or a number with K, M, G or T, such as 64M", e.getMessage());
        assertThrows(CommandLine.TypeConversionException.class, () -> UbdCommand.parseSize("99999999999T"));
    }
}

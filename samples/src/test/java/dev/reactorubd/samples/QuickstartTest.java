package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The README shows Quickstart.java as it is, so the quickstart in the README is code that compiles. */
class QuickstartTest {
    @Test
    void readmeHoldsTheQuickstartFileVerbatim() throws Exception {
        String source = Files.readString(Path.of("src/main/java/dev/reactorubd/samples/Quickstart.java"));
        String readme = Files.readString(Path.of("../README.md"));
        assertTrue(
                readme.contains("```java\n" + source + "```\n"),
                "README.md's quickstart block differs from samples/src/main/java/dev/reactorubd/samples/Quickstart.java");
    }
}

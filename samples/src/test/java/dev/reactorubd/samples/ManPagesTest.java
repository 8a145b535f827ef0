package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/** The man pages come from the command's definitions: one a verb, every option on it, and groff renders them. */
class ManPagesTest {
    @TempDir
    Path dir;

    @Test
    void everyVerbHasAPageNamingEveryOptionAndGroffRendersItWithoutWarnings() throws Exception {
        List<Path> pages = ManPages.write(dir);
        CommandLine root = UbdCommand.commandLine();
        assertEquals(root.getSubcommands().size() + 1, pages.size(), "ubd.1 and one page a verb");
        for (CommandLine sub : root.getSubcommands().values()) {
            Path page = dir.resolve("ubd-" + sub.getCommandName() + ".1");
            assertTrue(Files.exists(page), page.toString());
            String rendered = render(page);
            for (OptionSpec o : sub.getCommandSpec().options()) {
                if (!o.hidden()) {
                    String name = o.negatable() ? o.longestName().replaceFirst("^--", "--[no-]") : o.longestName();
                    assertTrue(rendered.contains(name), page + " names " + name);
                }
            }
            assertTrue(rendered.contains("EXIT STATUS"), page + " has the exit statuses");
        }
        String serve = render(dir.resolve("ubd-serve.1"));
        assertTrue(serve.contains("--[no-]zero-copy"), "negatable options shown so: " + serve);
        assertTrue(serve.contains("ubd serve --target memory --size 1G --queues 2"), "the examples");
        assertTrue(render(dir.resolve("ubd.1")).contains("ubd-serve(1)"), "ubd.1 lists the verbs");
    }

    /** The page as man shows it, plain text; fails on any groff warning. */
    private static String render(Path page) throws Exception {
        Process p = new ProcessBuilder(
                        "groff", "-man", "-Tutf8", "-ww", "-P", "-c", "-P", "-b", "-P", "-u", page.toString())
                .redirectErrorStream(false)
                .start();
        String out = new String(p.getInputStream().readAllBytes());
        String err = new String(p.getErrorStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), err);
        assertEquals("", err.strip(), "groff warnings on " + page);
        // groff renders hyphens as U+2010 in UTF-8 output with some fonts; compare with ASCII ones.
        return out.replace('\u2010', '-').replace('\u2212', '-');
    }
}

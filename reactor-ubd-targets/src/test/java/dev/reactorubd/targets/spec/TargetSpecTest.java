package dev.reactorubd.targets.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.compose.ConcatBackend;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.StripeBackend;
import dev.reactorubd.targets.spec.TargetSpec.InvalidTargetSpecException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Target specs: the grammar, the messages of bad ones, sizes, and what opening builds. */
class TargetSpecTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @Test
    void parsesEveryKind() {
        assertEquals(new TargetSpec.Sized("memory", 64 << 20), TargetSpec.parse("memory:64M"));
        assertEquals(new TargetSpec.Sized("null", 1L << 40), TargetSpec.parse(" null:1T "));
        assertEquals(new TargetSpec.File(Path.of("/a.img"), true, true), TargetSpec.parse("file:/a.img?direct&ro"));
        assertEquals(new TargetSpec.File(Path.of("/a.img"), false, true), TargetSpec.parse("file:/a.img?ro"));
        assertEquals(new TargetSpec.Nbd("nbd://h:10809/e"), TargetSpec.parse("nbd://h:10809/e"));
        TargetSpec s = TargetSpec.parse("mirror(memory:8M,stripe:4K(memory:4M,memory:4M),concat(null:1M,memory:3M))");
        TargetSpec.Composite m = assertInstanceOf(TargetSpec.Composite.class, s);
        assertEquals(3, m.parts().size());
        assertEquals(4096, ((TargetSpec.Composite) m.parts().get(1)).chunk());
        assertEquals(3 << 20, m.size(), "a mirror is as large as its smallest replica less its metadata (1 MiB)");
        assertEquals(
                "mirror(memory:8388608,stripe:4096(memory:4194304,memory:4194304),"
                        + "concat(null:1048576,memory:3145728))",
                s.text());
        assertEquals(s, TargetSpec.parse(s.text()), "text() parses back");
    }

    @Test
    void badSpecsSayWhatToWrite() {
        List.of(
                        "bogus:1",
                        "memory",
                        "memory:0",
                        "memory:12Q",
                        "file:",
                        "file:/x?fast",
                        "nbd:host",
                        "mirror(memory:1M)",
                        "mirror(memory:1M,memory:1M",
                        "concat:4K(memory:1M,memory:1M)",
                        "stripe:3K(memory:1M,memory:1M)",
                        "mirror(memory:1M,bogus)",
                        "",
                        "  ")
                .forEach(text -> {
                    InvalidTargetSpecException e =
                            assertThrows(InvalidTargetSpecException.class, () -> TargetSpec.parse(text), text);
                    assertTrue(
                            e.getMessage().contains("write")
                                    || e.getMessage().contains("use")
                                    || e.getMessage().contains("must"),
                            e.getMessage());
                });
        assertEquals(
                "'bogus:1' is not a target spec: write one of " + TargetSpec.SYNTAX,
                assertThrows(InvalidTargetSpecException.class, () -> TargetSpec.parse("bogus:1"))
                        .getMessage());
    }

    @Test
    void opensCompositionsAndFiles(@TempDir Path dir) {
        TargetSpec.Opened m = TargetSpec.open(TargetSpec.parse("mirror(memory:8M,memory:8M)"), 0)
                .block(WAIT);
        assertInstanceOf(MirrorBackend.class, m.backend());
        assertEquals(7 << 20, m.size(), "less the mirror's metadata");
        assertEquals(7 << 20, m.backend().size());
        m.close().block(WAIT);
        assertInstanceOf(
                StripeBackend.class,
                TargetSpec.open(TargetSpec.parse("stripe(memory:1M,memory:1M)"), 0)
                        .block(WAIT)
                        .backend());
        TargetSpec.Opened c = TargetSpec.open(
                        TargetSpec.parse("concat(memory:1M,file:" + dir.resolve("x.img") + ")"), 2 << 20)
                .block(WAIT);
        assertInstanceOf(ConcatBackend.class, c.backend());
        assertEquals(1, c.owned().size(), "the file backend is the caller's to close");
        assertEquals(3 << 20, c.backend().size());
        c.close().block(WAIT);
        assertInstanceOf(
                MemoryBackend.class,
                TargetSpec.open(TargetSpec.parse("memory:1M"), 0).block(WAIT).backend());
        assertThrows(
                RuntimeException.class,
                () -> TargetSpec.open(TargetSpec.parse("file:" + dir.resolve("none")), 0)
                        .block(WAIT),
                "a missing file without a size to create it with");
    }
}

package dev.reactorubd.targets.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.targets.spec.TargetPolicyException.Rule;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * The storage policy against attacks: each refused with a {@link TargetPolicyException} naming its rule, and nothing
 * created or changed on disk (the allowed directory and the one outside it are compared before and after).
 */
@Timeout(60)
class TargetPolicyTest {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final long MIB = 1 << 20;

    @TempDir
    Path root;

    private Path allowed;
    private Path outside;
    private Path secret;
    private TargetPolicy policy;

    @BeforeEach
    void setUp() throws IOException {
        allowed = Files.createDirectory(root.resolve("images"));
        outside = Files.createDirectory(root.resolve("outside"));
        secret = Files.write(outside.resolve("secret.img"), new byte[4096]);
        Files.write(allowed.resolve("disk.img"), new byte[(int) MIB]);
        policy = TargetPolicy.builder().allowDirectory(allowed).build();
    }

    /** Every file and directory below the test's root, with its type, size and modification time. */
    private Map<String, String> disk() throws IOException {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : all.toList()) {
                BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                m.put(
                        root.relativize(p).toString(),
                        (a.isSymbolicLink() ? "link" : a.isDirectory() ? "dir" : a.isRegularFile() ? "file" : "other")
                                + " " + a.size() + " " + a.lastModifiedTime());
            }
        }
        return m;
    }

    /** Runs an attack that must be refused by {@code rule}, with nothing on disk changed; returns the refusal. */
    private TargetPolicyException refused(Rule rule, Executable attack) throws IOException {
        Map<String, String> before = disk();
        TargetPolicyException e = assertThrows(TargetPolicyException.class, attack);
        assertEquals(rule, e.rule(), e.getMessage());
        assertTrue(e.getMessage().contains("[policy rule " + rule + "]"), e.getMessage());
        assertEquals(before, disk(), "a refused request changed nothing on disk");
        return e;
    }

    private TargetPolicyException refusedOpen(Rule rule, String spec, TargetSpec.OpenOptions o) throws IOException {
        return refused(rule, () -> TargetSpec.open(spec, policy, o).block(WAIT));
    }

    private TargetPolicyException refusedOpen(Rule rule, String spec) throws IOException {
        return refusedOpen(rule, spec, TargetSpec.OpenOptions.defaults());
    }

    @Test
    void aFileInTheAllowedDirectoryOpensOnABoundedElasticThread() {
        AtomicReference<String> thread = new AtomicReference<>();
        // Subscribed on a non-blocking thread (BlockHound watches it): the open itself moves to boundedElastic.
        TargetSpec.Opened o = TargetSpec.open(
                        "file:" + allowed.resolve("disk.img"), policy, TargetSpec.OpenOptions.defaults())
                .doOnNext(x -> thread.set(Thread.currentThread().getName()))
                .subscribeOn(Schedulers.parallel())
                .block(WAIT);
        try {
            assertInstanceOf(FileBackend.class, o.backend());
            assertEquals(MIB, o.size());
            assertEquals(1, policy.openTargets());
            assertTrue(thread.get().contains("boundedElastic"), thread.get());
        } finally {
            o.close().block(WAIT);
        }
        assertEquals(0, policy.openTargets(), "closing gives the count back");
    }

    @Test
    void dotDotOutOfTheDirectory() throws IOException {
        refusedOpen(Rule.FILE_DIRECTORY, "file:" + allowed + "/../outside/secret.img");
        refusedOpen(Rule.FILE_DIRECTORY, "file:" + allowed + "/sub/../disk.img");
        refusedOpen(Rule.FILE_DIRECTORY, "file:images/disk.img"); // relative
        refusedOpen(Rule.FILE_DIRECTORY, "file:" + allowed); // the directory itself
    }

    @Test
    void symlinksOutOfTheDirectory() throws IOException {
        Files.createSymbolicLink(allowed.resolve("link.img"), secret);
        Files.createSymbolicLink(allowed.resolve("sub"), outside);
        Files.createSymbolicLink(allowed.resolve("dangling.img"), outside.resolve("new.img"));
        refusedOpen(Rule.FILE_SYMLINK, "file:" + allowed.resolve("link.img"));
        refusedOpen(Rule.FILE_SYMLINK, "file:" + allowed.resolve("sub/secret.img"));
        TargetPolicy creating = TargetPolicy.builder()
                .allowDirectory(allowed)
                .allowCreate(MIB)
                .allowGrow(true)
                .build();
        policy = creating;
        // Asked to grow through a link, or to create through a dangling one: neither the link nor its target changes.
        refusedOpen(
                Rule.FILE_SYMLINK,
                "file:" + allowed.resolve("link.img"),
                TargetSpec.OpenOptions.defaults().grow(MIB));
        refusedOpen(
                Rule.FILE_SYMLINK,
                "file:" + allowed.resolve("dangling.img"),
                TargetSpec.OpenOptions.defaults().create(MIB));
        refusedOpen(
                Rule.FILE_SYMLINK,
                "file:" + allowed.resolve("sub/new.img"),
                TargetSpec.OpenOptions.defaults().create(MIB));
        assertFalse(Files.exists(outside.resolve("new.img")));
    }

    @Test
    void aSymlinkSwappedInAfterTheCheck() throws IOException {
        Path disk = allowed.resolve("disk.img");
        // The name is checked when open() is called; the file is opened when the Mono is subscribed.
        Mono<TargetSpec.Opened> open = TargetSpec.open(TargetSpec.parse("file:" + disk, policy), policy);
        Files.delete(disk);
        Files.createSymbolicLink(disk, secret);
        refused(Rule.FILE_SYMLINK, () -> open.block(WAIT));
        // A directory on the way swapped for a link out of the allowed one.
        Path sub = Files.createDirectory(allowed.resolve("sub"));
        Files.write(sub.resolve("a.img"), new byte[4096]);
        Mono<TargetSpec.Opened> nested =
                TargetSpec.open(TargetSpec.parse("file:" + sub.resolve("a.img"), policy), policy);
        Files.delete(sub.resolve("a.img"));
        Files.delete(sub);
        Files.copy(secret, outside.resolve("a.img"));
        Files.createSymbolicLink(sub, outside);
        refused(Rule.FILE_SYMLINK, () -> nested.block(WAIT));
        assertEquals(0, policy.openTargets(), "a refused open counts nothing");
    }

    @Test
    void devicesAndPseudoFilesOutsideAreRefusedByNameAlone() throws IOException {
        String sda = refusedOpen(Rule.FILE_DIRECTORY, "file:/dev/sda").getMessage();
        String none = refusedOpen(Rule.FILE_DIRECTORY, "file:/dev/no-such-disk").getMessage();
        assertEquals(
                sda.replace("/dev/sda", "X"),
                none.replace("/dev/no-such-disk", "X"),
                "the refusal does not tell whether the file exists");
        String exists = refusedOpen(Rule.FILE_DIRECTORY, "file:" + secret).getMessage();
        String missing = refusedOpen(Rule.FILE_DIRECTORY, "file:" + outside.resolve("nothere.img"))
                .getMessage();
        assertEquals(
                exists.replace(secret.toString(), "X"),
                missing.replace(outside.resolve("nothere.img").toString(), "X"));
        refusedOpen(Rule.FILE_DIRECTORY, "file:/proc/self/status");
        refusedOpen(Rule.FILE_DIRECTORY, "file:/proc/sysrq-trigger");
        refusedOpen(Rule.FILE_DIRECTORY, "file:/sys/kernel/mm/transparent_hugepage/enabled");
        refusedOpen(
                Rule.FILE_DIRECTORY,
                "file:/dev/watchdog",
                TargetSpec.OpenOptions.defaults().create(512));
        // Named block devices only: /dev/sda named by the policy is not /dev/sdb.
        policy = TargetPolicy.builder()
                .allowDirectory(allowed)
                .allowBlockDevice(Path.of("/dev/sda"))
                .build();
        refusedOpen(Rule.FILE_DIRECTORY, "file:/dev/sdb");
    }

    @Test
    void aFifoADirectoryAndABlockDeviceNotNamed() throws Exception {
        Path fifo = allowed.resolve("fifo.img");
        Process mk = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assertEquals(0, mk.waitFor());
        Files.createDirectory(allowed.resolve("dir.img"));
        // O_PATH: opening the FIFO does not wait for a writer; the policy refuses it by its type.
        assertTrue(refusedOpen(Rule.FILE_TYPE, "file:" + fifo).getMessage().contains("a FIFO"));
        assertTrue(
                refusedOpen(Rule.FILE_TYPE, "file:" + fifo + "?ro").getMessage().contains("a FIFO"));
        assertTrue(refusedOpen(Rule.FILE_TYPE, "file:" + allowed.resolve("dir.img"))
                .getMessage()
                .contains("a directory"));
        // Root's permissive policy takes any path, yet still only regular files and block devices.
        policy = TargetPolicy.permissive();
        refusedOpen(Rule.FILE_TYPE, "file:" + fifo);
        refusedOpen(Rule.FILE_TYPE, "file:/dev/null"); // a character device, never opened for IO
    }

    @Test
    void aMissingFileWithAndWithoutCreate() throws IOException {
        String img = "file:" + allowed.resolve("new.img");
        assertTrue(refusedOpen(Rule.CREATE, img).getMessage().contains("nothing asked to create it"));
        assertTrue(
                refusedOpen(Rule.CREATE, img, TargetSpec.OpenOptions.defaults().create(MIB))
                        .getMessage()
                        .contains("this policy creates no file"));
        // A size alone (the old createSize, now a device size) creates nothing, even under the permissive policy.
        policy = TargetPolicy.permissive();
        refusedOpen(Rule.CREATE, img, TargetSpec.OpenOptions.defaults().grow(MIB));
        policy = TargetPolicy.builder().allowDirectory(allowed).allowCreate(MIB).build();
        refusedOpen(Rule.CREATE, img, TargetSpec.OpenOptions.defaults().create(2 * MIB)); // beyond its most
        refusedOpen(Rule.CREATE, img + "?ro", TargetSpec.OpenOptions.defaults().create(MIB));
        // Allowed and asked for: created, sized, owner-only.
        TargetSpec.Opened o = TargetSpec.open(
                        img, policy, TargetSpec.OpenOptions.defaults().create(MIB))
                .block(WAIT);
        o.close().block(WAIT);
        assertEquals(MIB, Files.size(allowed.resolve("new.img")));
        assertTrue(EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE)
                .containsAll(Files.getPosixFilePermissions(allowed.resolve("new.img"))));
    }

    @Test
    void growingNeedsThePolicyAndTheRequest() throws IOException {
        String img = "file:" + allowed.resolve("disk.img");
        refusedOpen(Rule.GROW, img, TargetSpec.OpenOptions.defaults().grow(2 * MIB));
        policy = TargetPolicy.builder()
                .allowDirectory(allowed)
                .allowCreate(2 * MIB)
                .allowGrow(true)
                .build();
        TargetSpec.Opened same = TargetSpec.open(
                        img, policy, TargetSpec.OpenOptions.defaults().create(2 * MIB))
                .block(WAIT);
        same.close().block(WAIT);
        assertEquals(MIB, Files.size(allowed.resolve("disk.img")), "create leaves an existing file as it is");
        TargetSpec.Opened grown = TargetSpec.open(
                        img, policy, TargetSpec.OpenOptions.defaults().grow(2 * MIB))
                .block(WAIT);
        grown.close().block(WAIT);
        assertEquals(2 * MIB, Files.size(allowed.resolve("disk.img")));
    }

    @Test
    void hundredThousandNestedParentheses() throws IOException {
        String deep = "concat(".repeat(100_000) + "null:1" + ")".repeat(100_000);
        TargetPolicy roomy = TargetPolicy.builder()
                .maxSpecLength(TargetPolicy.LENGTH_CEILING)
                .build();
        long t0 = System.nanoTime();
        refused(Rule.NESTING_DEPTH, () -> TargetSpec.parse(deep, roomy));
        refused(Rule.NESTING_DEPTH, () -> TargetSpec.parse("mirror(".repeat(20) + "x" + ")".repeat(20)));
        refused(Rule.SPEC_LENGTH, () -> TargetSpec.parse(deep, policy));
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "refused in one linear pass");
        // A tree built in code, not parsed, is held to the same depth when opened.
        TargetSpec t = new TargetSpec.Sized("null", 1);
        for (int i = 0; i < 5; i++) {
            t = new TargetSpec.Composite("concat", 0, List.of(t, new TargetSpec.Sized("null", 1)));
        }
        TargetSpec tree = t;
        refused(Rule.NESTING_DEPTH, () -> TargetSpec.open(tree, policy));
    }

    @Test
    void aOneMegabyteSpec() throws IOException {
        String big = "file:" + allowed + "/" + "a".repeat(1 << 20);
        refused(Rule.SPEC_LENGTH, () -> TargetSpec.parse(big, policy));
        refused(Rule.SPEC_LENGTH, () -> TargetSpec.parse(big));
        refused(
                Rule.SPEC_LENGTH,
                () -> TargetSpec.open(big, TargetPolicy.permissive(), TargetSpec.OpenOptions.defaults())
                        .block(WAIT));
    }

    @Test
    void eightTerabytesOfMemory() throws IOException {
        refusedOpen(Rule.MEMORY, "memory:8T");
        refusedOpen(Rule.MEMORY, "concat(memory:512M,memory:512M,memory:1M)");
        // The limit holds across targets open at once under the same policy, and frees on close.
        TargetSpec.Opened half = TargetSpec.open("memory:768M", policy, TargetSpec.OpenOptions.defaults())
                .block(WAIT);
        refusedOpen(Rule.MEMORY, "memory:512M");
        half.close().block(WAIT);
        TargetSpec.open("memory:512M", policy, TargetSpec.OpenOptions.defaults())
                .block(WAIT)
                .close()
                .block(WAIT);
        assertEquals(0, policy.openMemoryBytes());
    }

    @Test
    void tenThousandParts() throws IOException {
        String many = "concat(" + String.join(",", Collections.nCopies(10_000, "null:1")) + ")";
        refused(Rule.SPEC_LENGTH, () -> TargetSpec.parse(many, policy));
        TargetPolicy roomy = TargetPolicy.builder()
                .maxSpecLength(TargetPolicy.LENGTH_CEILING)
                .build();
        refused(Rule.PARTS, () -> TargetSpec.parse(many, roomy));
        List<TargetSpec> parts = new ArrayList<>();
        for (int i = 0; i < 10_000; i++) {
            parts.add(new TargetSpec.Sized("null", 1));
        }
        TargetSpec.Composite built = new TargetSpec.Composite("concat", 0, parts);
        refused(Rule.PARTS, () -> TargetSpec.open(built, policy));
        // In all, too: eight compositions of eight parts in one are 72 parts.
        String wide = "concat("
                + String.join(
                        ",",
                        Collections.nCopies(8, "concat(" + String.join(",", Collections.nCopies(8, "null:1")) + ")"))
                + ")";
        refused(Rule.PARTS, () -> TargetSpec.parse(wide, policy));
    }

    @Test
    void targetsPerPolicy() throws IOException {
        TargetPolicy two = TargetPolicy.builder().maxTargets(2).build();
        policy = two;
        TargetSpec.Opened a = TargetSpec.open("null:1M", two, TargetSpec.OpenOptions.defaults())
                .block(WAIT);
        TargetSpec.Opened b = TargetSpec.open("null:1M", two, TargetSpec.OpenOptions.defaults())
                .block(WAIT);
        refusedOpen(Rule.DEVICES, "null:1M");
        a.close().block(WAIT);
        TargetSpec.open("null:1M", two, TargetSpec.OpenOptions.defaults())
                .block(WAIT)
                .close()
                .block(WAIT);
        b.close().block(WAIT);
        assertEquals(0, two.openTargets());
    }

    @Test
    void nbdOnlyFromTheAllowList() throws IOException {
        // Refused before any connection is tried (no server listens on these).
        refusedOpen(Rule.NBD_HOST, "nbd://169.254.169.254:10809/x");
        policy = TargetPolicy.builder()
                .allowNbd("nbd.example", 10809)
                .allowNbdSocket(Path.of("/run/nbd.sock"))
                .build();
        refusedOpen(Rule.NBD_HOST, "nbd://nbd.example:22/x");
        refusedOpen(Rule.NBD_HOST, "nbd://127.0.0.1/x");
        refusedOpen(Rule.NBD_SOCKET, "nbd+unix:///x?socket=/run/other.sock");
        refusedOpen(Rule.NBD_SOCKET, "nbd+unix:///x?socket=/run/x/../nbd.sock");
        refusedOpen(Rule.FILE_DIRECTORY, "mirror(memory:8M,file:/etc/shadow)");
    }

    @Test
    void nbdsFromTheAllowListToo_andWithoutCredentialFilesOfItsOwn() throws IOException {
        refusedOpen(Rule.NBD_HOST, "nbds://169.254.169.254:10809/x");
        policy = TargetPolicy.builder()
                .allowNbd("nbd.example", 10809)
                .allowNbdSocket(Path.of("/run/nbd.sock"))
                .build();
        refusedOpen(Rule.NBD_SOCKET, "nbds+unix:///x?socket=/run/other.sock");
        // The files a root client reads are the application's choice (NbdOptions), never a spec's.
        refusedOpen(Rule.NBD_TLS_FILES, "nbds://nbd.example/x?tls-certificates=/root/.ssh");
        refusedOpen(Rule.NBD_TLS_FILES, "nbds+unix:///x?socket=/run/nbd.sock&tls-certificates=/etc");
        assertEquals(
                "nbds://nbd.example/x", TargetSpec.parse("nbds://nbd.example/x").text());
    }
}

package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The credentials file: the command-line mode that makes tokens, what is kept, and what is refused. */
class CredentialsTest {
    @TempDir
    Path dir;

    @Test
    void theTokenModePrintsATokenOnceAndKeepsItsHash() throws IOException {
        Path file = dir.resolve("credentials");
        PrintStream out = System.out;
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        int status;
        try {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            status = ManagementApplication.credentialsMode(file.toString(), "ci:operator", null);
        } finally {
            System.setOut(out);
        }
        assertEquals(0, status);
        String token = printed.toString(StandardCharsets.UTF_8).strip();
        assertTrue(token.matches("ubd_[A-Za-z0-9_-]{43}"), token);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        String text = Files.readString(file);
        assertFalse(text.contains(token), text);
        assertTrue(text.contains("token ci OPERATOR sha256:" + Credentials.sha256(token)), text);
        Credentials c = Credentials.load(file);
        assertEquals(new Credentials.Token("ci", Role.OPERATOR), c.token(token).orElseThrow());
        assertTrue(c.token(token + "x").isEmpty());
        assertTrue(c.token("").isEmpty());
        // Usage errors: exit status 2, nothing written.
        assertEquals(2, ManagementApplication.credentialsMode(file.toString(), "ci:ADMIN", null));
        assertEquals(2, ManagementApplication.credentialsMode(null, "ci:READER", null));
        assertEquals(2, ManagementApplication.credentialsMode(file.toString(), "ci:READER", null), "a name twice");
        assertEquals(text, Files.readString(file));
    }

    @Test
    void usersAreKeptAsBcryptHashes() {
        Path file = dir.resolve("credentials");
        Credentials.addUser(file, "alice", Role.READER, "twelve chars!");
        var u = Credentials.load(file).users().get("alice");
        assertTrue(u.getPassword().startsWith("{bcrypt}$2"), u.getPassword());
        assertEquals("[ROLE_READER]", u.getAuthorities().toString());
        assertThrows(CredentialsFileException.class, () -> Credentials.addUser(file, "bob", Role.READER, "short"));
        assertThrows(
                CredentialsFileException.class,
                () -> Credentials.addUser(file, "has space", Role.READER, "twelve chars!"));
    }

    @Test
    void looseLinkedMissingOrMalformedFilesAreRefusedNamingTheFile() throws IOException {
        Path file = dir.resolve("credentials");
        Credentials.addToken(file, "ci", Role.READER);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--------"));
        assertEquals(1, Credentials.load(file).tokenCount(), "0400 is owner-only too");
        for (String mode : new String[] {"rw-r-----", "rw----r--", "rw--w----", "rwx------"}) {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString(mode));
            CredentialsFileException e = assertThrows(CredentialsFileException.class, () -> Credentials.load(file));
            assertTrue(e.getMessage().startsWith("credentials file " + file + ": has mode 0"), e.getMessage());
            assertTrue(
                    e.getMessage().contains("(" + mode + ")") && e.getMessage().contains("chmod 600"), e.getMessage());
            assertEquals(file.toString(), e.file());
        }
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        Path link = Files.createSymbolicLink(dir.resolve("link"), file);
        assertTrue(assertThrows(CredentialsFileException.class, () -> Credentials.load(link))
                .getMessage()
                .contains("is a symbolic link"));
        assertTrue(assertThrows(CredentialsFileException.class, () -> Credentials.load(dir.resolve("none")))
                .getMessage()
                .contains("does not exist"));
        Files.writeString(file, "token ci READER notahash\n");
        assertTrue(assertThrows(CredentialsFileException.class, () -> Credentials.load(file))
                .getMessage()
                .contains("line 1: a token's hash is sha256:"));
        Files.writeString(file, "# comment\n\nuser ci ROOT {bcrypt}x\n");
        assertTrue(assertThrows(CredentialsFileException.class, () -> Credentials.load(file))
                .getMessage()
                .contains("line 3: 'ROOT' is not a role"));
    }

    @Test
    void modesAreWrittenAsChmodDoes() {
        assertEquals("0644", Credentials.octal(PosixFilePermissions.fromString("rw-r--r--")));
        assertEquals("0600", Credentials.octal(PosixFilePermissions.fromString("rw-------")));
        assertEquals("0755", Credentials.octal(PosixFilePermissions.fromString("rwxr-xr-x")));
    }
}

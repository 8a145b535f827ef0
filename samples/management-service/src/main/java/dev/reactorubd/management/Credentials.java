package dev.reactorubd.management;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.springframework.security.core.userdetails.User;
import org.springframework.security.core.userdetails.UserDetails;
import org.springframework.security.crypto.factory.PasswordEncoderFactories;
import org.springframework.security.crypto.password.PasswordEncoder;

/**
 * The service's bearer tokens and page users, read once at start from one file that only its owner may read
 * ({@code ubd.security.credentials-file}). One entry a line; {@code #} starts a comment:
 * <pre>
 * token NAME ROLE sha256:HEX      a bearer token: only the SHA-256 of the secret is kept
 * user  NAME ROLE {bcrypt}HASH     a user of the login page: a Spring Security password hash
 * </pre>
 * A token is 32 random bytes, so one SHA-256 is enough to keep it from being read back (nothing to guess by
 * brute force); a password is chosen by a person, so it is kept as a slow bcrypt hash. {@link #addToken} and
 * {@link #addUser} write entries ({@code --ubd.tokens.add}, {@code --ubd.users.add}, {@link ManagementApplication}).
 */
public final class Credentials {
    /** A bearer token's name (its secret is not kept) and role. */
    public record Token(String name, Role role) {}

    /** Entry names: letters, digits, dot, dash, underscore, at sign (no spaces: the file is space-separated). */
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._@-]{1,64}");
    /** The prefix of every token secret, so that one found in a log or a script is recognised. */
    static final String TOKEN_PREFIX = "ubd_";

    private static final Set<PosixFilePermission> OWNER_ONLY =
            EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE);
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final PasswordEncoder PASSWORDS = PasswordEncoderFactories.createDelegatingPasswordEncoder();

    private final Map<String, Token> tokensByHash;
    private final Map<String, UserDetails> users;

    private Credentials(Map<String, Token> tokensByHash, Map<String, UserDetails> users) {
        this.tokensByHash = Map.copyOf(tokensByHash);
        this.users = Map.copyOf(users);
    }

    /** {@return no token and no user: every request that needs credentials is refused} */
    public static Credentials none() {
        return new Credentials(Map.of(), Map.of());
    }

    /**
     * Reads the file, after checking that only its owner, the user running the service, can read or change it.
     *
     * @param file the credentials file
     * @return its tokens and users
     * @throws CredentialsFileException when it is missing, a symbolic link, not owner-only (mode 0600 or 0400), not
     *                                  owned by the service's user, or has a malformed line
     */
    public static Credentials load(Path file) {
        checkPrivate(file);
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new CredentialsFileException(file, "cannot be read: " + e.getMessage());
        }
        Map<String, Token> tokens = new LinkedHashMap<>();
        Map<String, UserDetails> users = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\\s+");
            String where = "line " + (i + 1) + ": ";
            if (f.length != 4 || !NAME.matcher(f[1]).matches()) {
                throw new CredentialsFileException(
                        file,
                        where + "write 'token NAME ROLE sha256:HEX' or 'user NAME "
                                + "ROLE {bcrypt}HASH' (NAME of letters, digits, . _ @ -)");
            }
            Role role;
            try {
                role = Role.parse(f[2]);
            } catch (IllegalArgumentException e) {
                throw new CredentialsFileException(file, where + e.getMessage());
            }
            switch (f[0]) {
                case "token" -> {
                    if (!f[3].matches("sha256:[0-9a-f]{64}")) {
                        throw new CredentialsFileException(
                                file,
                                where + "a token's hash is sha256: and 64 lower-case "
                                        + "hex digits (make tokens with --ubd.tokens.add=NAME:ROLE)");
                    }
                    tokens.put(f[3].substring("sha256:".length()), new Token(f[1], role));
                }
                case "user" -> {
                    if (!f[3].startsWith("{")) {
                        throw new CredentialsFileException(
                                file,
                                where + "a password hash starts with its scheme, "
                                        + "e.g. {bcrypt} (make users with --ubd.users.add=NAME:ROLE)");
                    }
                    users.put(
                            f[1],
                            User.withUsername(f[1])
                                    .password(f[3])
                                    .authorities(role.authorities())
                                    .build());
                }
                default ->
                    throw new CredentialsFileException(
                            file, where + "an entry starts with 'token' or 'user', " + "not '" + f[0] + "'");
            }
        }
        return new Credentials(tokens, users);
    }

    /** Refuses a file that anyone but its owner, the service's user, could read or change. */
    private static void checkPrivate(Path file) {
        try {
            if (Files.isSymbolicLink(file)) {
                throw new CredentialsFileException(file, "is a symbolic link: configure the file itself");
            }
            Set<PosixFilePermission> mode = Files.getPosixFilePermissions(file, LinkOption.NOFOLLOW_LINKS);
            if (!OWNER_ONLY.containsAll(mode)) {
                throw new CredentialsFileException(
                        file,
                        "has mode " + octal(mode) + " ("
                                + PosixFilePermissions.toString(mode)
                                + "), but it holds the service's credentials and must "
                                + "be readable by its owner only (mode 0600): run chmod 600 " + file);
            }
            String owner = Files.getOwner(file, LinkOption.NOFOLLOW_LINKS).getName();
            String me = System.getProperty("user.name");
            if (!owner.equals(me)) {
                throw new CredentialsFileException(
                        file,
                        "is owned by " + owner + ", not by " + me + " who runs the " + "service: run chown " + me + " "
                                + file);
            }
        } catch (NoSuchFileException e) {
            throw new CredentialsFileException(
                    file, "does not exist: make it with --ubd.tokens.add=NAME:ROLE " + "(see docs/security.md)");
        } catch (IOException e) {
            throw new CredentialsFileException(file, "cannot be checked: " + e.getMessage());
        }
    }

    /** A mode as chmod writes it, e.g. 0644. */
    static String octal(Set<PosixFilePermission> mode) {
        int bits = 0;
        for (PosixFilePermission p : mode) {
            bits |= 1 << (8 - p.ordinal());
        }
        return String.format("0%03o", bits);
    }

    /**
     * The token whose secret this is.
     *
     * @param secret what a client sent after {@code Bearer }
     * @return its name and role; empty for an unknown secret
     */
    public Optional<Token> token(String secret) {
        return Optional.ofNullable(tokensByHash.get(sha256(secret)));
    }

    /** {@return the page's users by name, their passwords hashed} */
    public Map<String, UserDetails> users() {
        return users;
    }

    /** {@return how many tokens there are} */
    public int tokenCount() {
        return tokensByHash.size();
    }

    /** The lower-case hex SHA-256 of a secret's UTF-8 bytes. */
    static String sha256(String secret) {
        try {
            return HexFormat.of()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(secret.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }

    /**
     * Makes a new token and appends its hash to the file (created owner-only if missing).
     *
     * @param file the credentials file
     * @param name the token's name (in logs; letters, digits, {@code . _ @ -})
     * @param role what it may do
     * @return the secret, shown once: the file keeps only its hash
     * @throws CredentialsFileException as {@link #load}, or for a bad name
     */
    public static String addToken(Path file, String name, Role role) {
        byte[] bytes = new byte[32];
        RANDOM.nextBytes(bytes);
        String secret = TOKEN_PREFIX + Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
        append(file, name, "token " + name + " " + role + " sha256:" + sha256(secret));
        return secret;
    }

    /**
     * Adds a user of the login page, the password hashed with bcrypt, to the file (created owner-only if missing).
     *
     * @param file     the credentials file
     * @param name     the user's name
     * @param role     what the user may do
     * @param password the password (at least 12 characters)
     * @throws CredentialsFileException as {@link #load}, for a bad name, or a name already there
     */
    public static void addUser(Path file, String name, Role role, CharSequence password) {
        if (password.length() < 12) {
            throw new CredentialsFileException(
                    file, "the password of " + name + " has " + password.length() + " characters: give at least 12");
        }
        append(file, name, "user " + name + " " + role + " " + PASSWORDS.encode(password));
    }

    private static void append(Path file, String name, String line) {
        if (!NAME.matcher(name).matches()) {
            throw new CredentialsFileException(
                    file, "'" + name + "' is not a name: use 1 to 64 letters, digits, " + ". _ @ -");
        }
        try {
            if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
                Files.createFile(file, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
                Files.writeString(
                        file,
                        "# reactor-ubd management service credentials (docs/security.md): keep it " + "mode 0600\n",
                        StandardCharsets.UTF_8,
                        StandardOpenOption.APPEND);
            }
            Credentials existing = load(file);
            if (existing.users.containsKey(name)
                    || existing.tokensByHash.values().stream()
                            .anyMatch(t -> t.name().equals(name))) {
                throw new CredentialsFileException(
                        file,
                        "has an entry named " + name + " already: remove its line " + "first, or choose another name");
            }
            Files.writeString(file, line + "\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new CredentialsFileException(file, "cannot be written: " + e.getMessage());
        }
    }
}

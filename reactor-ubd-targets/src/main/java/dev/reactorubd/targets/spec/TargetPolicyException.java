package dev.reactorubd.targets.spec;

import java.util.Objects;

/**
 * A target spec the {@link TargetPolicy} refused: {@link #rule()} names the rule, the message says what was refused
 * and what to do. Thrown by {@link TargetSpec#parse(String, TargetPolicy)} and signalled by {@link TargetSpec#open}
 * before anything is opened, created or changed on disk.
 *
 * <p>A refusal never says whether a file outside the policy's directories exists, what it is or how large: such a
 * path is refused on its name alone, before it is looked at. It is an {@link TargetSpec.InvalidTargetSpecException}
 * (so an {@link IllegalArgumentException}): a caller that maps bad specs to a usage error (the command line's exit
 * status 2) or to HTTP 400 maps these the same way, and can tell them apart by type and rule.
 */
public final class TargetPolicyException extends TargetSpec.InvalidTargetSpecException {
    private static final long serialVersionUID = 1L;

    /** The rules of a {@link TargetPolicy}, one per kind of refusal. */
    public enum Rule {
        /** The spec is longer than {@link TargetPolicy#maxSpecLength()} characters. */
        SPEC_LENGTH,
        /** Compositions nest deeper than {@link TargetPolicy#maxDepth()}. */
        NESTING_DEPTH,
        /** A composition, or the whole spec, has more than {@link TargetPolicy#maxParts()} parts. */
        PARTS,
        /** {@link TargetPolicy#maxTargets()} targets are open under the policy already. */
        DEVICES,
        /** The memory targets would hold more than {@link TargetPolicy#maxMemoryBytes()} bytes in all. */
        MEMORY,
        /** A file outside the policy's directories (or a path with {@code ..}, or relative). */
        FILE_DIRECTORY,
        /** A symbolic link as the file or as a directory on its way, below an allowed directory. */
        FILE_SYMLINK,
        /** Not a regular file (a directory, FIFO, socket, character device, or a block device not named). */
        FILE_TYPE,
        /** A missing file that the request did not ask to create, or that the policy does not let it create. */
        CREATE,
        /** A shorter file that the request asks to grow where the policy does not allow it. */
        GROW,
        /** An NBD server (host and port) the policy does not list. */
        NBD_HOST,
        /** An NBD Unix socket the policy does not list. */
        NBD_SOCKET,
        /**
         * An {@code nbds} URI that names its own TLS credentials ({@code tls-certificates=}): only a permissive policy
         * lets a spec choose files for the client to read; others use the application's {@code NbdOptions}.
         */
        NBD_TLS_FILES,
        /** A Ceph pool and client the policy does not list ({@code TargetPolicy.Builder.allowRbd}). */
        RBD_POOL,
        /**
         * An {@code rbd:} spec that names its own configuration or keyring ({@code conf=}, {@code keyring=}): only a
         * permissive policy lets a spec choose files for the client to read; others use the policy's {@code
         * rbdConfig}.
         */
        RBD_FILES
    }

    /** The rule that refused the request. */
    private final Rule rule;

    /**
     * A refusal.
     *
     * @param rule    the rule that refused
     * @param message what was refused and what to do
     */
    public TargetPolicyException(Rule rule, String message) {
        super(message + " [policy rule " + Objects.requireNonNull(rule, "rule") + "]");
        this.rule = rule;
    }

    /** {@return the rule that refused the spec} */
    public Rule rule() {
        return rule;
    }
}

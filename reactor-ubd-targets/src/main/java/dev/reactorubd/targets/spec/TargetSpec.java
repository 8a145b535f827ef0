package dev.reactorubd.targets.spec;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.MirrorOptions;
import dev.reactorubd.targets.nbd.NbdBackend;
import dev.reactorubd.targets.nbd.NbdOptions;
import dev.reactorubd.targets.nbd.NbdUri;
import dev.reactorubd.targets.rbd.RbdBackend;
import dev.reactorubd.targets.rbd.RbdImageSpec;
import dev.reactorubd.targets.rbd.RbdOptions;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * A target written as one string, as the command line's {@code --replica}/{@code --part} SPECs and the management
 * service's API take it, parsed into a tree that can then be opened into a {@link BlockBackend}.
 *
 * <pre>
 * null:SIZE                       discards writes, reads zeros (SIZE: bytes or 512K, 64M, 10G, 1T)
 * memory:SIZE                     a sparse RAM disk
 * file:PATH[?direct][?ro]         a file or block device (O_DIRECT, read-only); also file:PATH?direct&amp;ro
 * nbd://host[:port]/export        an NBD export over TCP; nbd+unix:///export?socket=PATH over a Unix socket
 * nbds://host[:port]/export       the same over TLS (required); nbds+unix:///export?socket=PATH
 * rbd:POOL/IMAGE[@SNAP][?conf=PATH&amp;id=NAME&amp;keyring=PATH]   a Ceph RBD image (a snapshot read-only), through librbd
 * mirror(SPEC,SPEC,...)           RAID-1 of the parts, with its metadata on them (docs/mirror.md): 1 MiB+ smaller
 * stripe[:CHUNK](SPEC,SPEC,...)   RAID-0 in CHUNK-byte chunks (default 64K)
 * concat(SPEC,SPEC,...)           the parts one after the other
 * </pre>
 *
 * <p>{@link #parse} checks the syntax only and throws {@link InvalidTargetSpecException} naming what to write
 * instead; {@link #open(TargetSpec, TargetPolicy, OpenOptions)} opens files and connects to NBD servers, signalling
 * their errors (typically {@code UbdException}s). Both apply a {@link TargetPolicy}: what a spec may reach (files only
 * below allowed directories, opened without following symbolic links and checked on the descriptor; NBD servers from
 * an allow-list; no file created or grown unless the request asks by name and the policy allows it) and how much it
 * may take (its length, nesting and parts, targets open and memory in all). A refusal is a {@link
 * TargetPolicyException} naming the {@link TargetPolicyException.Rule rule}, signalled before anything is opened,
 * created or changed. {@link #open(TargetSpec, TargetPolicy)} is the call for specs from others: pass the restrictive
 * {@link TargetPolicy#defaults()} or your own; root's command line passes {@link TargetPolicy#permissive()}.
 *
 * <p>The parser is linear in the spec's length, checks the length before anything else, and recurses at most as
 * deep as the policy's nesting (never beyond {@value TargetPolicy#DEPTH_CEILING}). Immutable and thread-safe.
 */
public sealed interface TargetSpec {
    /**
     * A bad spec: the message says what is wrong and what to write instead. A {@link TargetPolicyException} is one
     * that the spec's {@link TargetPolicy} refused, naming the rule.
     */
    class InvalidTargetSpecException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        /**
         * A bad spec.
         *
         * @param message what is wrong and what to write instead
         */
        public InvalidTargetSpecException(String message) {
            super(message);
        }
    }

    /** What the grammar accepts, for error messages. */
    String SYNTAX = "null:SIZE, memory:SIZE, file:PATH[?direct][?ro], nbd://host[:port]/export, "
            + "nbd+unix:///export?socket=PATH, nbds://host[:port]/export (TLS), nbds+unix:///export?socket=PATH, rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH], mirror(SPEC,SPEC...), stripe[:CHUNK](SPEC,SPEC...) or concat(SPEC,SPEC...)";

    /**
     * The spec as it would be written.
     *
     * @return the text, which parses back to an equal spec
     */
    String text();

    /**
     * The device size this spec implies.
     *
     * @return bytes, or {@link BlockBackend#UNKNOWN_SIZE} (the backend knows, once open)
     */
    long size();

    /**
     * A null or memory target of a given size.
     *
     * @param kind  {@code null} or {@code memory}
     * @param bytes the size
     */
    record Sized(String kind, long bytes) implements TargetSpec {
        @Override
        public String text() {
            return kind + ":" + bytes;
        }

        @Override
        public long size() {
            return bytes;
        }
    }

    /**
     * A file or block device.
     *
     * @param path     the file or device
     * @param direct   O_DIRECT
     * @param readOnly opened read-only
     */
    record File(Path path, boolean direct, boolean readOnly) implements TargetSpec {
        @Override
        public String text() {
            return "file:" + path + (direct ? "?direct" : "") + (readOnly ? "?ro" : "");
        }

        @Override
        public long size() {
            return BlockBackend.UNKNOWN_SIZE;
        }
    }

    /**
     * An NBD export.
     *
     * @param uri its NBD URI
     */
    record Nbd(String uri) implements TargetSpec {
        @Override
        public String text() {
            return uri;
        }

        @Override
        public long size() {
            return BlockBackend.UNKNOWN_SIZE;
        }
    }

    /**
     * A Ceph RBD image.
     *
     * @param image the image, its cluster's configuration and the client
     */
    record Rbd(RbdImageSpec image) implements TargetSpec {
        /** Checks the image. */
        public Rbd {
            Objects.requireNonNull(image, "image");
        }

        @Override
        public String text() {
            return image.toString();
        }

        @Override
        public long size() {
            return BlockBackend.UNKNOWN_SIZE;
        }
    }

    /**
     * mirror, stripe or concat of parts.
     *
     * @param kind  {@code mirror}, {@code stripe} or {@code concat}
     * @param chunk the stripe's chunk in bytes (unused otherwise)
     * @param parts the parts, in order
     */
    record Composite(String kind, int chunk, List<TargetSpec> parts) implements TargetSpec {
        /** Copies the parts. */
        public Composite {
            parts = List.copyOf(parts);
        }

        @Override
        public String text() {
            StringBuilder b = new StringBuilder(kind);
            if (kind.equals("stripe")) {
                b.append(':').append(chunk);
            }
            b.append('(');
            for (int i = 0; i < parts.size(); i++) {
                b.append(i == 0 ? "" : ",").append(parts.get(i).text());
            }
            return b.append(')').toString();
        }

        @Override
        public long size() {
            long total = 0;
            long min = Long.MAX_VALUE;
            for (TargetSpec p : parts) {
                long s = p.size();
                if (s < 0) {
                    return BlockBackend.UNKNOWN_SIZE;
                }
                total += s;
                min = Math.min(min, s);
            }
            return switch (kind) {
                // A new mirror over replicas of this size: the metadata takes the first MiB or more.
                case "mirror" -> MirrorBackend.newMirrorSize(min, MirrorBackend.DEFAULT_REGION_BYTES);
                case "stripe" -> min / chunk * chunk * parts.size();
                default -> total;
            };
        }
    }

    /**
     * An opened target: the backend to serve and every backend opened for it (files, NBD clients), which the caller
     * closes after the device with {@link #close()}; closing also gives its count back to the policy it was opened
     * under.
     *
     * @param spec    the spec opened
     * @param backend the backend to serve
     * @param owned   every backend opened for it, to close after the device
     * @param lease   what it counts against its policy's limits ({@link TargetPolicy.Lease#NONE} for nothing)
     */
    record Opened(TargetSpec spec, BlockBackend backend, List<BlockBackend> owned, TargetPolicy.Lease lease) {
        /**
         * An opened target that counts against no policy.
         *
         * @param spec    the spec opened
         * @param backend the backend to serve
         * @param owned   every backend opened for it, to close after the device
         */
        public Opened(TargetSpec spec, BlockBackend backend, List<BlockBackend> owned) {
            this(spec, backend, owned, TargetPolicy.Lease.NONE);
        }

        /**
         * The device size: the spec's, else the backend's.
         *
         * @return bytes, or {@link BlockBackend#UNKNOWN_SIZE} if neither knows
         */
        public long size() {
            long s = spec.size();
            return s > 0 ? s : backend.size();
        }

        /**
         * Closes what was opened, the last opened first (a mirror before its replicas: it marks its superblocks clean),
         * then gives the target's count back to its policy; errors are dropped (each close is bounded by its backend).
         *
         * @return a Mono that completes when every backend is closed
         */
        public Mono<Void> close() {
            // Given back before the completion goes downstream (doFinally would run after it): a caller that opens
            // the next target once this completed is never refused by a count that is about to drop.
            return Flux.fromIterable(owned.reversed())
                    .concatMap(b -> b.close().onErrorResume(e -> Mono.empty()))
                    .then()
                    .doOnTerminate(lease::release)
                    .doOnCancel(lease::release);
        }
    }

    /**
     * How a spec is opened, besides its policy: the NBD clients' and mirrors' options, and whether missing files are
     * created or shorter ones grown, which happens only when asked here by name and allowed by the policy (a device
     * size alone never creates or extends a file).
     *
     * @param nbd         options of the NBD clients
     * @param mirror      options of the mirrors
     * @param createBytes create every missing file of the spec with this many bytes (sparse); 0 creates none
     * @param growBytes   extend every shorter regular file of the spec to this many bytes (sparse); 0 grows none
     * @param rbd         options of the RBD clients
     */
    record OpenOptions(NbdOptions nbd, MirrorOptions mirror, long createBytes, long growBytes, RbdOptions rbd) {
        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException when a size is negative
         */
        public OpenOptions {
            Objects.requireNonNull(nbd, "nbd");
            Objects.requireNonNull(mirror, "mirror");
            Objects.requireNonNull(rbd, "rbd");
            if (createBytes < 0 || growBytes < 0) {
                throw new IllegalArgumentException(
                        "create and grow sizes must not be negative; were " + createBytes + " and " + growBytes);
            }
        }

        /**
         * Options with the RBD clients' defaults.
         *
         * @param nbd         options of the NBD clients
         * @param mirror      options of the mirrors
         * @param createBytes create every missing file of the spec with this many bytes (sparse); 0 creates none
         * @param growBytes   extend every shorter regular file of the spec to this many bytes (sparse); 0 grows none
         */
        public OpenOptions(NbdOptions nbd, MirrorOptions mirror, long createBytes, long growBytes) {
            this(nbd, mirror, createBytes, growBytes, RbdOptions.defaults());
        }

        /**
         * The RBD clients' options.
         *
         * @param options the options
         * @return a copy with that changed
         */
        public OpenOptions rbd(RbdOptions options) {
            return new OpenOptions(nbd, mirror, createBytes, growBytes, options);
        }

        /** {@return default NBD options (5 reconnects, 30 s per request), default mirrors, nothing created or grown} */
        public static OpenOptions defaults() {
            return new OpenOptions(
                    NbdOptions.builder().requestTimeout(Duration.ofSeconds(30)).build(),
                    MirrorOptions.defaults(),
                    0,
                    0);
        }

        /**
         * The NBD clients' options.
         *
         * @param options the options
         * @return a copy with that changed
         */
        public OpenOptions nbd(NbdOptions options) {
            return new OpenOptions(options, mirror, createBytes, growBytes, rbd);
        }

        /**
         * The mirrors' options.
         *
         * @param options the options
         * @return a copy with that changed
         */
        public OpenOptions mirror(MirrorOptions options) {
            return new OpenOptions(nbd, options, createBytes, growBytes, rbd);
        }

        /**
         * Create every missing file of the spec with this many bytes (refused with rule CREATE where the policy does
         * not allow it); an existing file is used as it is.
         *
         * @param bytes the size, or 0 to create none
         * @return a copy with that changed
         */
        public OpenOptions create(long bytes) {
            return new OpenOptions(nbd, mirror, bytes, growBytes, rbd);
        }

        /**
         * Extend every shorter regular file of the spec to this many bytes (refused with rule GROW where the policy
         * does not allow it); never shrinks one.
         *
         * @param bytes the size, or 0 to grow none
         * @return a copy with that changed
         */
        public OpenOptions grow(long bytes) {
            return new OpenOptions(nbd, mirror, createBytes, bytes, rbd);
        }
    }

    /**
     * Parses a spec; syntax only (no file is opened), within the parser limits of {@link TargetPolicy#permissive()}
     * (64 KiB, 16 levels of nesting, 1024 parts per composition). A spec that will be opened under another policy is
     * better parsed with {@link #parse(String, TargetPolicy)}, which refuses an over-long or over-deep spec first.
     *
     * @param spec the text
     * @return the spec
     *
     * @throws InvalidTargetSpecException naming what is wrong and what to write instead ({@link TargetPolicyException}
     *                                    for a spec beyond the limits)
     */
    static TargetSpec parse(String spec) {
        return parse(spec, TargetPolicy.permissive());
    }

    /**
     * Parses a spec within a policy's limits: its length first (before reading it), then in one pass its nesting and
     * the parts of each composition, then the grammar. Opens nothing: what the spec names is checked when it is opened.
     *
     * @param spec   the text
     * @param policy the limits
     * @return the spec
     * @throws InvalidTargetSpecException naming what is wrong and what to write instead
     * @throws TargetPolicyException      SPEC_LENGTH, NESTING_DEPTH or PARTS
     */
    static TargetSpec parse(String spec, TargetPolicy policy) {
        Objects.requireNonNull(policy, "policy");
        if (spec == null || spec.isBlank()) {
            throw new InvalidTargetSpecException("the target spec is empty: write one of " + SYNTAX);
        }
        if (spec.length() > policy.maxSpecLength()) {
            throw new TargetPolicyException(
                    TargetPolicyException.Rule.SPEC_LENGTH,
                    "the target spec is "
                            + spec.length() + " characters long, more than this policy's " + policy.maxSpecLength()
                            + ": write a shorter one");
        }
        String t = spec.trim();
        Parser.checkShape(t, policy);
        return new Parser(t).top();
    }

    /**
     * Parses {@code 64M}-style sizes: bytes, or a number with K, M, G or T (powers of 1024).
     *
     * @param s the text
     * @return the size in bytes, positive
     * @throws InvalidTargetSpecException when it is not a size
     */
    static long parseSize(String s) {
        String t = s.trim().toUpperCase(Locale.ROOT);
        long unit = 1;
        char last = t.isEmpty() ? ' ' : t.charAt(t.length() - 1);
        switch (last) {
            case 'K' -> unit = 1L << 10;
            case 'M' -> unit = 1L << 20;
            case 'G' -> unit = 1L << 30;
            case 'T' -> unit = 1L << 40;
            default -> {}
        }
        String digits = unit == 1 ? t : t.substring(0, t.length() - 1);
        try {
            long v = Math.multiplyExact(Long.parseLong(digits), unit);
            if (v <= 0) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException | ArithmeticException e) {
            throw new InvalidTargetSpecException(
                    "'" + s + "' is not a size: write bytes or a number with K, M, G or " + "T, such as 64M");
        }
    }

    /**
     * Opens a spec under a policy, with default {@link OpenOptions} (nothing created or grown): the call for specs
     * that come from others. See {@link #open(TargetSpec, TargetPolicy, OpenOptions)}.
     *
     * @param spec   the spec
     * @param policy what the spec may reach and take: {@link TargetPolicy#defaults()} (restrictive), your own, or
     *               {@link TargetPolicy#permissive()} for root's own tools
     * @return the opened target; close it after the device
     */
    static Mono<Opened> open(TargetSpec spec, TargetPolicy policy) {
        return open(spec, policy, OpenOptions.defaults());
    }

    /**
     * Parses and opens a spec under a policy: {@link #parse(String, TargetPolicy)}, then
     * {@link #open(TargetSpec, TargetPolicy, OpenOptions)}; a bad or refused spec is an error signal.
     *
     * @param spec    the text
     * @param policy  what the spec may reach and take
     * @param options NBD and mirror options, and what to create or grow
     * @return the opened target; close it after the device
     */
    static Mono<Opened> open(String spec, TargetPolicy policy, OpenOptions options) {
        return Mono.defer(() -> open(parse(spec, policy), policy, options));
    }

    /**
     * Opens a spec under a policy: files opened (see {@link TargetPolicy} for how), NBD servers connected,
     * compositions built.
     *
     * <p>The policy's checks that need no disk (length, nesting and parts, memory and target counts, file paths by
     * name, NBD endpoints) run when this is called and throw {@link TargetPolicyException}; the rest (symbolic links,
     * file types, creating and growing) run when the Mono is subscribed and are signalled, before that file is opened
     * for IO. Either way nothing is created or changed on disk by a refused spec. Files are opened on {@code
     * Schedulers.boundedElastic()} (opening blocks), never on the subscriber's thread, so subscribing on an event loop
     * is safe. The target counts against the policy until {@link Opened#close()}. On error, what was already opened is
     * closed before the error is signalled.
     *
     * @param spec    the spec
     * @param policy  what the spec may reach and take
     * @param options NBD and mirror options, and what to create or grow
     * @return the opened target; close it after the device
     * @throws TargetPolicyException the rule that refused the spec (a refusal found later is signalled)
     */
    static Mono<Opened> open(TargetSpec spec, TargetPolicy policy, OpenOptions options) {
        Objects.requireNonNull(spec, "spec");
        Objects.requireNonNull(policy, "policy");
        Objects.requireNonNull(options, "options");
        long memory = Parser.check(spec, policy);
        return Mono.defer(() -> {
            TargetPolicy.Lease lease = policy.lease(memory);
            List<BlockBackend> owned = new ArrayList<>();
            AtomicBoolean delivered = new AtomicBoolean();
            return Parser.open(spec, policy, options, owned)
                    .map(b -> new Opened(spec, b, List.copyOf(owned), lease))
                    .doOnNext(o -> delivered.set(true))
                    .onErrorResume(e -> Flux.fromIterable(List.copyOf(owned))
                            .concatMap(b -> b.close().onErrorResume(x -> Mono.empty()))
                            .then(Mono.fromRunnable(lease::release))
                            .then(Mono.<Opened>error(e))
                            .doOnCancel(lease::release))
                    // Cancelled before the target was delivered: nothing holds it (what was opened is the leak of the
                    // canceller, as before); once delivered, the Opened's close() gives the count back.
                    .doOnCancel(() -> {
                        if (!delivered.get()) {
                            lease.release();
                        }
                    });
        });
    }

    /**
     * Opens the target under {@link TargetPolicy#permissive()}, as this library always did: files are created with
     * {@code createSize} bytes where missing, and shorter ones extended to it, when {@code createSize > 0}. Prefer
     * {@link #open(TargetSpec, TargetPolicy, OpenOptions)}: a caller that takes specs from others must pass its policy,
     * and ask for creating ({@link OpenOptions#create}) or growing ({@link OpenOptions#grow}) by name.
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with and grow shorter ones to (0: create none)
     * @param nbd        options of the NBD clients
     * @return the opened target
     * @deprecated pass a policy: {@link #open(TargetSpec, TargetPolicy, OpenOptions)}
     */
    @Deprecated
    static Mono<Opened> open(TargetSpec spec, long createSize, NbdOptions nbd) {
        return open(spec, createSize, nbd, MirrorOptions.defaults());
    }

    /**
     * {@link #open(TargetSpec, long, NbdOptions)} with the options of every mirror in the spec. A mirror is assembled
     * from its replicas' superblocks and is among {@link Opened#owned()}, before its replicas are closed; a mirror that
     * refuses fails with {@code MirrorAssemblyException}.
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with and grow shorter ones to (0: create none)
     * @param nbd        options of the NBD clients
     * @param mirror     options of the mirrors
     * @return the opened target
     * @deprecated pass a policy: {@link #open(TargetSpec, TargetPolicy, OpenOptions)}
     */
    @Deprecated
    static Mono<Opened> open(TargetSpec spec, long createSize, NbdOptions nbd, MirrorOptions mirror) {
        long bytes = Math.max(0, createSize);
        return Mono.defer(() -> open(spec, TargetPolicy.permissive(), new OpenOptions(nbd, mirror, bytes, bytes)));
    }

    /**
     * {@link #open(TargetSpec, long, NbdOptions)} with default NBD options (5 reconnects, 30 s per request).
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with and grow shorter ones to (0: create none)
     * @return the opened target
     * @deprecated pass a policy: {@link #open(TargetSpec, TargetPolicy)}
     */
    @Deprecated
    static Mono<Opened> open(TargetSpec spec, long createSize) {
        return open(
                spec,
                createSize,
                NbdOptions.builder().requestTimeout(Duration.ofSeconds(30)).build());
    }

    /** The parser and opener (not API). */
    final class Parser {
        private static final int QUOTE = 80;
        private final String s;
        private int pos;

        private Parser(String s) {
            this.s = s;
        }

        /** The text, cut short for a message. */
        static String quote(String text) {
            return "'"
                    + (text.length() <= QUOTE
                            ? text
                            : text.substring(0, QUOTE) + "...(" + text.length() + " characters)")
                    + "'";
        }

        /**
         * One pass over the text: nesting of parentheses and commas per level, against the policy's depth and parts.
         * Its stack of counts is as deep as the policy's depth, so the pass is linear and bounded whatever the text.
         */
        static void checkShape(String t, TargetPolicy policy) {
            int[] parts = new int[policy.maxDepth() + 1];
            int depth = 0;
            int total = 0;
            for (int i = 0; i < t.length(); i++) {
                char c = t.charAt(i);
                if (c == '(') {
                    total++;
                    if (++depth > policy.maxDepth()) {
                        throw new TargetPolicyException(
                                TargetPolicyException.Rule.NESTING_DEPTH,
                                "the target spec "
                                        + "nests compositions deeper than this policy's " + policy.maxDepth()
                                        + " levels: write a flatter one");
                    }
                    parts[depth] = 1;
                } else if (c == ')' && depth > 0) {
                    depth--;
                } else if (c == ',' && depth > 0) {
                    total++;
                    if (++parts[depth] > policy.maxParts() || total > policy.maxParts()) {
                        throw new TargetPolicyException(
                                TargetPolicyException.Rule.PARTS,
                                "the target spec has more "
                                        + "than this policy's " + policy.maxParts() + " parts in "
                                        + (parts[depth] > policy.maxParts() ? "one composition" : "all")
                                        + ": write one with fewer");
                    }
                }
            }
        }

        /** The whole text as one spec: a composition, or a leaf (which takes the whole text, commas and all). */
        TargetSpec top() {
            int end = headEnd(0);
            String head = s.substring(0, end);
            if (isComposite(head)) {
                TargetSpec c = composite(0, end);
                if (pos != s.length()) {
                    throw notInParentheses(s);
                }
                return c;
            }
            return leaf(s);
        }

        private static boolean isComposite(String head) {
            return head.startsWith("mirror") || head.startsWith("stripe") || head.startsWith("concat");
        }

        /** Where the head of the spec at {@code from} ends: at its '(' (or ',' or ')' or the end of the text). */
        private int headEnd(int from) {
            int i = from;
            while (i < s.length() && s.charAt(i) != '(' && s.charAt(i) != ',' && s.charAt(i) != ')') {
                i++;
            }
            return i;
        }

        private static InvalidTargetSpecException notInParentheses(String text) {
            return new InvalidTargetSpecException(quote(text) + " needs its parts in parentheses: write e.g. "
                    + "mirror(memory:64M,memory:64M), stripe:64K(SPEC,SPEC) or concat(SPEC,SPEC)");
        }

        /**
         * A part inside a composition, from {@code pos}: a composition, or a leaf running to the ',' or ')' that ends
         * it (parentheses inside a leaf, as in a file name, are kept balanced). Leaves {@code pos} at that character.
         */
        private TargetSpec part() {
            int start = pos;
            while (start < s.length() && Character.isWhitespace(s.charAt(start))) {
                start++;
            }
            int end = headEnd(start);
            String head = s.substring(start, end);
            if (isComposite(head.strip())) {
                TargetSpec c = composite(start, end);
                int after = pos;
                while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                    pos++;
                }
                if (pos < s.length() && s.charAt(pos) != ',' && s.charAt(pos) != ')') {
                    throw notInParentheses(s.substring(start, Math.min(s.length(), after + QUOTE)));
                }
                return c;
            }
            int depth = 0;
            int i = start;
            for (; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c == '(') {
                    depth++;
                } else if (c == ')') {
                    if (depth == 0) {
                        break;
                    }
                    depth--;
                } else if (c == ',' && depth == 0) {
                    break;
                }
            }
            pos = i;
            return leaf(s.substring(start, i).strip());
        }

        /** A composition whose head is {@code s[start, paren)}; leaves {@code pos} after its ')'. */
        private TargetSpec composite(int start, int paren) {
            String head = s.substring(start, paren).strip();
            if (paren >= s.length() || s.charAt(paren) != '(') {
                throw notInParentheses(s.substring(start, Math.min(s.length(), start + QUOTE)));
            }
            String kind = head.contains(":") ? head.substring(0, head.indexOf(':')) : head;
            int chunk = 64 << 10;
            if (!kind.equals(head)) {
                if (!kind.equals("stripe")) {
                    throw new InvalidTargetSpecException(quote(head) + ": only stripe takes a parameter (its chunk "
                            + "size, e.g. stripe:64K(SPEC,SPEC)); write " + kind + "(SPEC,SPEC...)");
                }
                long c = parseSize(head.substring(head.indexOf(':') + 1));
                if (c < 512 || c > (1 << 30) || Long.bitCount(c) != 1) {
                    throw new InvalidTargetSpecException("stripe chunk " + c + " must be a power of two from 512 "
                            + "bytes to 1G, e.g. stripe:64K(...)");
                }
                chunk = (int) c;
            }
            if (!kind.equals("mirror") && !kind.equals("stripe") && !kind.equals("concat")) {
                throw new InvalidTargetSpecException(quote(head) + " is not a composition: write mirror(...), "
                        + "stripe[:CHUNK](...) or concat(...)");
            }
            List<TargetSpec> parts = new ArrayList<>();
            pos = paren + 1;
            int close = closeAfterBlanks(pos);
            while (close < 0) {
                parts.add(part());
                if (pos >= s.length()) {
                    throw new InvalidTargetSpecException("unbalanced parentheses in " + quote(s) + ": write each "
                            + "composition's parts inside one pair of parentheses, e.g. concat(SPEC,SPEC)");
                }
                if (s.charAt(pos) == ')') {
                    close = pos;
                } else {
                    pos++; // the ','
                }
            }
            pos = close + 1;
            if (parts.size() < 2) {
                throw new InvalidTargetSpecException(quote(s.substring(start, pos)) + " has " + parts.size()
                        + " part(s): " + kind + " needs at least two; write e.g. " + kind + "(memory:64M,memory:64M)");
            }
            return new Composite(kind, chunk, parts);
        }

        /** The ')' after only whitespace from {@code from} (an empty composition), else -1. */
        private int closeAfterBlanks(int from) {
            int i = from;
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
            return i < s.length() && s.charAt(i) == ')' ? i : -1;
        }

        private static TargetSpec leaf(String s) {
            if (s.startsWith("nbd://")
                    || s.startsWith("nbd+unix://")
                    || s.startsWith("nbds://")
                    || s.startsWith("nbds+unix://")) {
                return new Nbd(s);
            }
            if (s.startsWith(RbdImageSpec.SCHEME)) {
                try {
                    return new Rbd(RbdImageSpec.parse(s));
                } catch (IllegalArgumentException e) {
                    throw new InvalidTargetSpecException(e.getMessage());
                }
            }
            int colon = s.indexOf(':');
            String kind = colon < 0 ? s : s.substring(0, colon);
            String rest = colon < 0 ? "" : s.substring(colon + 1);
            return switch (kind) {
                case "null", "memory" -> {
                    if (rest.isEmpty()) {
                        throw new InvalidTargetSpecException(
                                quote(s) + " has no size: write " + kind + ":SIZE, e.g. " + kind + ":64M");
                    }
                    yield new Sized(kind, parseSize(rest));
                }
                case "file" -> {
                    String[] pathAndFlags = rest.split("\\?", 2);
                    if (pathAndFlags[0].isEmpty()) {
                        throw new InvalidTargetSpecException(quote(s) + " has no path: write file:PATH, e.g. "
                                + "file:/var/lib/disk.img or file:/var/lib/disk.img?direct");
                    }
                    boolean direct = false;
                    boolean ro = false;
                    if (pathAndFlags.length > 1) {
                        for (String flag : pathAndFlags[1].split("[?&]")) {
                            switch (flag) {
                                case "direct" -> direct = true;
                                case "ro" -> ro = true;
                                default ->
                                    throw new InvalidTargetSpecException(quote(flag) + " in " + quote(s)
                                            + " is not a file option: use ?direct (O_DIRECT) and/or ?ro (read-only)");
                            }
                        }
                    }
                    try {
                        yield new File(Path.of(pathAndFlags[0]), direct, ro);
                    } catch (InvalidPathException e) {
                        throw new InvalidTargetSpecException(quote(s) + " has a path that is not one (" + e.getReason()
                                + "): write file:PATH, e.g. file:/var/lib/disk.img");
                    }
                }
                case "nbd", "nbd+unix", "nbds", "nbds+unix" ->
                    throw new InvalidTargetSpecException(quote(s)
                            + " is not an NBD URI: write nbd://host[:port]/export or nbd+unix:///export?socket=PATH (TLS:"
                            + " nbds://, nbds+unix://)");
                default ->
                    throw new InvalidTargetSpecException(quote(s) + " is not a target spec: write one of " + SYNTAX);
            };
        }

        /**
         * The policy's checks that need no disk, over the tree (which may have been built in code rather than parsed):
         * length, nesting, parts, file paths by name, NBD endpoints.
         *
         * @return the bytes of memory targets in the spec
         */
        static long check(TargetSpec spec, TargetPolicy policy) {
            long[] leaves = {0};
            long memory = check(spec, policy, 0, leaves);
            int length = spec.text().length();
            if (length > policy.maxSpecLength()) {
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.SPEC_LENGTH,
                        "the target spec is " + length
                                + " characters long, more than this policy's " + policy.maxSpecLength()
                                + ": write a shorter one");
            }
            if (memory > policy.maxMemoryBytes()) {
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.MEMORY,
                        "the spec's memory targets take "
                                + memory + " bytes, more than this policy's " + policy.maxMemoryBytes()
                                + " bytes of memory targets in all: ask for less");
            }
            return memory;
        }

        private static long check(TargetSpec spec, TargetPolicy policy, int depth, long[] leaves) {
            return switch (spec) {
                case Sized z -> z.kind().equals("memory") ? z.bytes() : 0;
                case File f -> {
                    PolicyFiles.checkName(f, policy);
                    yield 0;
                }
                case Nbd n -> {
                    checkNbd(n, policy);
                    yield 0;
                }
                case Rbd r -> {
                    checkRbd(r, policy);
                    yield 0;
                }
                case Composite c -> {
                    if (depth + 1 > policy.maxDepth()) {
                        throw new TargetPolicyException(
                                TargetPolicyException.Rule.NESTING_DEPTH,
                                "the target spec "
                                        + "nests compositions deeper than this policy's " + policy.maxDepth()
                                        + " levels: write a flatter one");
                    }
                    if (c.parts().size() > policy.maxParts()) {
                        throw new TargetPolicyException(
                                TargetPolicyException.Rule.PARTS,
                                "the target spec has more "
                                        + "than this policy's " + policy.maxParts()
                                        + " parts in one composition: write one "
                                        + "with fewer");
                    }
                    leaves[0] += c.parts().size();
                    if (leaves[0] > policy.maxParts()) {
                        throw new TargetPolicyException(
                                TargetPolicyException.Rule.PARTS,
                                "the target spec has more " + "than this policy's " + policy.maxParts()
                                        + " parts in all: write one with fewer");
                    }
                    long total = 0;
                    for (TargetSpec p : c.parts()) {
                        long m = check(p, policy, depth + 1, leaves);
                        total = total + m < 0 ? Long.MAX_VALUE : total + m;
                    }
                    yield total;
                }
            };
        }

        private static void checkRbd(Rbd r, TargetPolicy policy) {
            if (policy.allowsAnyRbd()) {
                return;
            }
            RbdImageSpec i = r.image();
            if (i.conf() != null || i.keyring() != null) {
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.RBD_FILES,
                        "the RBD spec names its own configuration or keyring (conf=, keyring=), which this policy does "
                                + "not allow: leave them out, and the service's configured ones "
                                + "(TargetPolicy.Builder.rbdConfig) are used");
            }
            if (!policy.allowsRbd(i.pool(), i.clientId())) {
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.RBD_POOL,
                        "pool " + i.pool() + " as client." + i.clientId()
                                + " is not one this policy allows: use an allowed pool and client, or have it allowed "
                                + "(TargetPolicy.Builder.allowRbd)");
            }
        }

        /** The image with the policy's configuration and keyring where the spec names none. */
        private static RbdImageSpec withPolicyFiles(RbdImageSpec i, TargetPolicy policy) {
            return new RbdImageSpec(
                    i.pool(),
                    i.image(),
                    i.snapshot(),
                    i.conf() != null ? i.conf() : policy.rbdConf(),
                    i.id(),
                    i.keyring() != null ? i.keyring() : policy.rbdKeyring());
        }

        private static void checkNbd(Nbd n, TargetPolicy policy) {
            if (policy.allowsAnyNbd()) {
                return;
            }
            NbdUri u;
            try {
                u = NbdUri.parse(n.uri());
            } catch (IllegalArgumentException e) {
                throw new InvalidTargetSpecException(e.getMessage());
            }
            if (u.tlsCertificates() != null) {
                // The credentials are the application's to choose (NbdOptions): a spec from others names no files.
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.NBD_TLS_FILES,
                        "the NBD URI names its own"
                                + " TLS credentials (tls-certificates=), which this policy does not allow: leave it out, and"
                                + " the service's configured credentials (NbdOptions.Builder.tlsCertificates) are used");
            }
            if (u.isUnix()) {
                Path socket = Path.of(u.socketPath());
                if (!socket.isAbsolute()
                        || TargetPolicy.hasDotDot(socket)
                        || !policy.allowsNbdSocket(socket.normalize())) {
                    throw new TargetPolicyException(
                            TargetPolicyException.Rule.NBD_SOCKET,
                            "the NBD socket "
                                    + u.socketPath()
                                    + " is not one this policy allows: use an allowed socket, or have it "
                                    + "allowed (TargetPolicy.Builder.allowNbdSocket)");
                }
            } else if (!policy.allowsNbd(u.host(), u.port())) {
                throw new TargetPolicyException(
                        TargetPolicyException.Rule.NBD_HOST,
                        "the NBD server " + u.host() + ":"
                                + u.port()
                                + " is not one this policy allows: use an allowed server, or have it allowed "
                                + "(TargetPolicy.Builder.allowNbd)");
            }
        }

        static Mono<BlockBackend> open(TargetSpec spec, TargetPolicy policy, OpenOptions o, List<BlockBackend> owned) {
            return switch (spec) {
                case Sized s when s.kind().equals("null") -> Mono.just(new NullBackend());
                case Sized s -> Mono.fromCallable(() -> new MemoryBackend(s.bytes()));
                // Opening blocks (open, fstat, ftruncate): on boundedElastic, never on the subscriber's event loop.
                case File f ->
                    Mono.fromCallable(() -> track(owned, PolicyFiles.open(f, policy, o)))
                            .subscribeOn(Schedulers.boundedElastic());
                case Nbd n -> NbdBackend.connect(n.uri(), o.nbd()).map(b -> track(owned, b));
                case Rbd r ->
                    RbdBackend.open(withPolicyFiles(r.image(), policy), o.rbd()).map(b -> track(owned, b));
                case Composite c ->
                    Flux.fromIterable(c.parts())
                            .concatMap(p -> open(p, policy, o, owned))
                            .collectList()
                            .flatMap(parts -> {
                                BlockBackend[] a = parts.toArray(BlockBackend[]::new);
                                return switch (c.kind()) {
                                    // Assembled from its replicas' superblocks (docs/mirror.md).
                                    // Tracked, so that it is closed (cleanly, before its replicas) after the device.
                                    case "mirror" ->
                                        Backends.assembleMirror(o.mirror(), a).map(m -> track(owned, m));
                                    case "stripe" ->
                                        Mono.fromCallable(() -> (BlockBackend) Backends.stripe(c.chunk(), a));
                                    default -> Mono.fromCallable(() -> (BlockBackend) Backends.concat(a));
                                };
                            });
            };
        }

        private static BlockBackend track(List<BlockBackend> owned, BlockBackend b) {
            synchronized (owned) {
                owned.add(b);
            }
            return b;
        }
    }
}

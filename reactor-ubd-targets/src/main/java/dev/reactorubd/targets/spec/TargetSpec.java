package dev.reactorubd.targets.spec;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.NullBackend;
import dev.reactorubd.targets.compose.Backends;
import dev.reactorubd.targets.compose.MirrorBackend;
import dev.reactorubd.targets.compose.MirrorOptions;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.targets.nbd.NbdBackend;
import dev.reactorubd.targets.nbd.NbdOptions;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A target written as one string, as the command line's {@code --replica}/{@code --part} SPECs and the management
 * service's API take it, parsed into a tree that can then be opened into a {@link BlockBackend}.
 *
 * <pre>
 * null:SIZE                       discards writes, reads zeros (SIZE: bytes or 512K, 64M, 10G, 1T)
 * memory:SIZE                     a sparse RAM disk
 * file:PATH[?direct][?ro]         a file or block device (O_DIRECT, read-only); also file:PATH?direct&amp;ro
 * nbd://host[:port]/export        an NBD export over TCP; nbd+unix:///export?socket=PATH over a Unix socket
 * mirror(SPEC,SPEC,...)           RAID-1 of the parts, with its metadata on them (docs/mirror.md): 1 MiB+ smaller
 * stripe[:CHUNK](SPEC,SPEC,...)   RAID-0 in CHUNK-byte chunks (default 64K)
 * concat(SPEC,SPEC,...)           the parts one after the other
 * </pre>
 *
 * <p>{@link #parse} checks the syntax only and throws {@link InvalidTargetSpecException} naming what to write
 * instead; {@link #open} opens files and connects to NBD servers, signalling their errors (typically
 * {@code UbdException}s). Immutable and thread-safe.
 */
public sealed interface TargetSpec {
    /** A bad spec: the message says what is wrong and what to write instead. */
    final class InvalidTargetSpecException extends IllegalArgumentException {
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
            + "nbd+unix:///export?socket=PATH, mirror(SPEC,SPEC...), stripe[:CHUNK](SPEC,SPEC...) or concat(SPEC,SPEC...)";

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
     * closes after the device with {@link #close()}.
     *
     * @param spec    the spec opened
     * @param backend the backend to serve
     * @param owned   every backend opened for it, to close after the device
     */
    record Opened(TargetSpec spec, BlockBackend backend, List<BlockBackend> owned) {
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
         * Closes what was opened, the last opened first (a mirror before its replicas: it marks its superblocks clean);
         * errors are dropped (each close is bounded by its backend).
         *
         * @return a Mono that completes when every backend is closed
         */
        public Mono<Void> close() {
            return Flux.fromIterable(owned.reversed()).concatMap(b -> b.close().onErrorResume(e -> Mono.empty()))
                    .then();
        }
    }

    /**
     * Parses a spec; syntax only (no file is opened).
     *
     * @param spec the text
     * @return the spec
     *
     * @throws InvalidTargetSpecException naming what is wrong and what to write instead
     */
    static TargetSpec parse(String spec) {
        if (spec == null || spec.isBlank()) {
            throw new InvalidTargetSpecException("the target spec is empty: write one of " + SYNTAX);
        }
        return Parser.parse(spec.trim());
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
            default -> { }
        }
        String digits = unit == 1 ? t : t.substring(0, t.length() - 1);
        try {
            long v = Math.multiplyExact(Long.parseLong(digits), unit);
            if (v <= 0) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException | ArithmeticException e) {
            throw new InvalidTargetSpecException("'" + s + "' is not a size: write bytes or a number with K, M, G or "
                    + "T, such as 64M");
        }
    }

    /**
     * Opens the target: files are opened (created with {@code createSize} bytes where missing and
     * {@code createSize > 0}), NBD servers connected (with {@code nbd}'s options), compositions built.
     * On error, what was already opened is closed before the error is signalled.
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with (0: create none)
     * @param nbd        options of the NBD clients
     * @return the opened target
     */
    static Mono<Opened> open(TargetSpec spec, long createSize, NbdOptions nbd) {
        return open(spec, createSize, nbd, MirrorOptions.defaults());
    }

    /**
     * {@link #open(TargetSpec, long, NbdOptions)} with the options of every mirror in the spec (a replica assumed
     * current, say). A mirror is assembled from its replicas' superblocks and is among {@link Opened#owned()}, before
     * its replicas are closed; a mirror that refuses fails with {@code MirrorAssemblyException}.
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with (0: create none)
     * @param nbd        options of the NBD clients
     * @param mirror     options of the mirrors
     * @return the opened target
     */
    static Mono<Opened> open(TargetSpec spec, long createSize, NbdOptions nbd, MirrorOptions mirror) {
        Objects.requireNonNull(spec, "spec");
        Objects.requireNonNull(nbd, "nbd");
        Objects.requireNonNull(mirror, "mirror");
        List<BlockBackend> owned = new ArrayList<>();
        return Parser.open(spec, createSize, nbd, mirror, owned)
                .map(b -> new Opened(spec, b, List.copyOf(owned)))
                .onErrorResume(e -> Flux.fromIterable(List.copyOf(owned))
                        .concatMap(b -> b.close().onErrorResume(x -> Mono.empty()))
                        .then(Mono.error(e)));
    }

    /**
     * {@link #open(TargetSpec, long, NbdOptions)} with default NBD options (5 reconnects, 30 s per request).
     *
     * @param spec       the spec
     * @param createSize bytes to create missing files with (0: create none)
     * @return the opened target
     */
    static Mono<Opened> open(TargetSpec spec, long createSize) {
        return open(spec, createSize, NbdOptions.builder().requestTimeout(Duration.ofSeconds(30)).build());
    }

    /** The parser and opener (not API). */
    final class Parser {
        private Parser() {}

        static TargetSpec parse(String s) {
            int paren = s.indexOf('(');
            String head = paren < 0 ? s : s.substring(0, paren);
            if (head.startsWith("mirror") || head.startsWith("stripe") || head.startsWith("concat")) {
                return composite(s, paren);
            }
            if (s.startsWith("nbd://") || s.startsWith("nbd+unix://")) {
                return new Nbd(s);
            }
            int colon = s.indexOf(':');
            String kind = colon < 0 ? s : s.substring(0, colon);
            String rest = colon < 0 ? "" : s.substring(colon + 1);
            return switch (kind) {
                case "null", "memory" -> {
                    if (rest.isEmpty()) {
                        throw new InvalidTargetSpecException("'" + s + "' has no size: write " + kind + ":SIZE, e.g. "
                                + kind + ":64M");
                    }
                    yield new Sized(kind, parseSize(rest));
                }
                case "file" -> {
                    String[] pathAndFlags = rest.split("\\?", 2);
                    if (pathAndFlags[0].isEmpty()) {
                        throw new InvalidTargetSpecException("'" + s + "' has no path: write file:PATH, e.g. "
                                + "file:/var/lib/disk.img or file:/var/lib/disk.img?direct");
                    }
                    boolean direct = false;
                    boolean ro = false;
                    if (pathAndFlags.length > 1) {
                        for (String flag : pathAndFlags[1].split("[?&]")) {
                            switch (flag) {
                                case "direct" -> direct = true;
                                case "ro" -> ro = true;
                                default -> throw new InvalidTargetSpecException("'" + flag + "' in '" + s
                                        + "' is not a file option: use ?direct (O_DIRECT) and/or ?ro (read-only)");
                            }
                        }
                    }
                    yield new File(Path.of(pathAndFlags[0]), direct, ro);
                }
                case "nbd", "nbd+unix" -> throw new InvalidTargetSpecException("'" + s + "' is not an NBD URI: write "
                        + "nbd://host[:port]/export or nbd+unix:///export?socket=PATH");
                default -> throw new InvalidTargetSpecException("'" + s + "' is not a target spec: write one of "
                        + SYNTAX);
            };
        }

        private static TargetSpec composite(String s, int paren) {
            if (paren < 0 || !s.endsWith(")")) {
                throw new InvalidTargetSpecException("'" + s + "' needs its parts in parentheses: write e.g. "
                        + "mirror(memory:64M,memory:64M), stripe:64K(SPEC,SPEC) or concat(SPEC,SPEC)");
            }
            String head = s.substring(0, paren);
            String kind = head.contains(":") ? head.substring(0, head.indexOf(':')) : head;
            int chunk = 64 << 10;
            if (!kind.equals(head)) {
                if (!kind.equals("stripe")) {
                    throw new InvalidTargetSpecException("'" + head + "': only stripe takes a parameter (its chunk "
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
                throw new InvalidTargetSpecException("'" + head + "' is not a composition: write mirror(...), "
                        + "stripe[:CHUNK](...) or concat(...)");
            }
            List<TargetSpec> parts = new ArrayList<>();
            for (String part : splitTopLevel(s.substring(paren + 1, s.length() - 1), s)) {
                parts.add(parse(part.trim()));
            }
            if (parts.size() < 2) {
                throw new InvalidTargetSpecException("'" + s + "' has " + parts.size() + " part(s): " + kind
                        + " needs at least two; write e.g. " + kind + "(memory:64M,memory:64M)");
            }
            return new Composite(kind, chunk, parts);
        }

        private static List<String> splitTopLevel(String inner, String whole) {
            List<String> out = new ArrayList<>();
            int depth = 0;
            int start = 0;
            for (int i = 0; i < inner.length(); i++) {
                char c = inner.charAt(i);
                if (c == '(') {
                    depth++;
                } else if (c == ')') {
                    if (--depth < 0) {
                        throw new InvalidTargetSpecException("unbalanced parentheses in '" + whole + "'");
                    }
                } else if (c == ',' && depth == 0) {
                    out.add(inner.substring(start, i));
                    start = i + 1;
                }
            }
            if (depth != 0) {
                throw new InvalidTargetSpecException("unbalanced parentheses in '" + whole + "'");
            }
            if (!inner.isBlank()) {
                out.add(inner.substring(start));
            }
            return out;
        }

        static Mono<BlockBackend> open(TargetSpec spec, long createSize, NbdOptions nbd, MirrorOptions mirror,
                List<BlockBackend> owned) {
            return switch (spec) {
                case Sized s when s.kind().equals("null") -> Mono.just(new NullBackend());
                case Sized s -> Mono.fromCallable(() -> new MemoryBackend(s.bytes()));
                case File f -> Mono.fromCallable(() -> track(owned, FileBackend.open(f.path(), FileBackend.Options
                        .defaults().direct(f.direct()).readOnly(f.readOnly()).createSize(Math.max(0, createSize)))));
                case Nbd n -> NbdBackend.connect(n.uri(), nbd).map(b -> track(owned, b));
                case Composite c -> Flux.fromIterable(c.parts())
                        .concatMap(p -> open(p, createSize, nbd, mirror, owned))
                        .collectList()
                        .flatMap(parts -> {
                            BlockBackend[] a = parts.toArray(BlockBackend[]::new);
                            return switch (c.kind()) {
                                // Assembled from its replicas' superblocks (docs/mirror.md).
                                // Tracked, so that it is closed (cleanly, before its replicas) after the device.
                                case "mirror" -> Backends.assembleMirror(mirror, a).map(m -> track(owned, m));
                                case "stripe" -> Mono.fromCallable(() -> (BlockBackend) Backends.stripe(c.chunk(), a));
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

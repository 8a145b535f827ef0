package dev.reactorubd.targets.spec;

import dev.reactorubd.targets.spec.TargetPolicyException.Rule;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a target spec may reach and how much it may take: the one storage policy that {@link TargetSpec} applies
 * wherever a spec is parsed ({@link TargetSpec#parse(String, TargetPolicy)}) and opened
 * ({@link TargetSpec#open(TargetSpec, TargetPolicy, TargetSpec.OpenOptions)}), so that the command line, the management
 * service and applications that embed the library refuse the same things the same way, with a
 * {@link TargetPolicyException} naming the {@link Rule}.
 *
 * <h2>Files</h2>
 * Only below the {@linkplain Builder#allowDirectory directories} the policy lists (as absolute paths, compared by name:
 * give their real paths). The spec's path must be absolute and have no {@code ..}; each directory on the way is opened
 * with {@code O_NOFOLLOW} from the allowed directory's descriptor, and the file itself with {@code O_PATH|O_NOFOLLOW}
 * relative to its directory's descriptor, so a symbolic link anywhere below the allowed directory is refused
 * ({@link Rule#FILE_SYMLINK}) and a path swapped after the check still resolves below it. What that descriptor names is
 * checked with {@code fstat} before anything is opened for IO: a regular file, or a block device only where the policy
 * {@linkplain Builder#allowBlockDevice names it} ({@link Rule#FILE_TYPE}); the file is then opened through that very
 * descriptor. A path outside the directories is refused on its name alone, so the refusal says nothing of whether it
 * exists. {@link #permissive()} instead takes any path, as root's command line always has.
 *
 * <h2>Creating and growing</h2>
 * No file is created or extended unless the policy allows it ({@link Builder#allowCreate}, {@link Builder#allowGrow})
 * and the request asks for it by name ({@link TargetSpec.OpenOptions#create}, {@link TargetSpec.OpenOptions#grow}); a
 * device size alone never creates or extends a file. A file is created with {@code O_CREAT|O_EXCL|O_NOFOLLOW} (mode
 * 0600) and sized on its descriptor.
 *
 * <h2>NBD</h2>
 * Only the {@linkplain Builder#allowNbd hosts and ports} and {@linkplain Builder#allowNbdSocket Unix sockets} listed,
 * compared as written in the URI (host names are not resolved for the check: list the names clients use).
 *
 * <h2>Ceph RBD</h2>
 * Only the {@linkplain Builder#allowRbd pools and clients} listed: an image of pool P as client C where (P, C) is
 * allowed ({@link Rule#RBD_POOL}). A spec from others names no files ({@code conf=}, {@code keyring=}: {@link
 * Rule#RBD_FILES}): the application's {@code RbdOptions}-side configuration, {@link Builder#rbdConfig}, is used.
 *
 * <h2>Limits</h2>
 * Targets open at once under this policy instance ({@link #maxTargets()}: one per device), total bytes of memory
 * targets open under it ({@link #maxMemoryBytes()}), parts of one composition and of all of a spec's compositions together
 * ({@link #maxParts()}), nesting of compositions ({@link #maxDepth()}) and the length of the spec
 * ({@link #maxSpecLength()}, checked before anything else; the parser is linear in the length and its recursion is
 * bounded by the depth, at most {@value #DEPTH_CEILING}).
 *
 * <h2>Threads and state</h2>
 * A policy's rules are immutable. It also counts what is open under it (targets, memory bytes) so that its limits hold
 * across every open that uses the same instance, from any thread: share one instance per process (the
 * {@link #defaults()} and {@link #permissive()} instances are shared). A target counts until its
 * {@link TargetSpec.Opened#close()}.
 */
public final class TargetPolicy {
    /** The deepest nesting any policy allows: it bounds the parser's recursion. */
    public static final int DEPTH_CEILING = 64;
    /** The longest spec any policy allows, in characters. */
    public static final int LENGTH_CEILING = 1 << 20;

    private static final TargetPolicy DEFAULTS = builder().build();
    private static final TargetPolicy PERMISSIVE = builder()
            .allowAnyFile()
            .allowBlockDevices()
            .allowCreate(Long.MAX_VALUE)
            .allowGrow(true)
            .allowAnyNbd()
            .allowAnyRbd()
            .maxTargets(Integer.MAX_VALUE)
            .maxMemoryBytes(Long.MAX_VALUE)
            .maxParts(1024)
            .maxDepth(16)
            .maxSpecLength(64 << 10)
            .exclusiveBlockDevices(false)
            .build();

    private final List<Path> directories;
    private final Set<Path> blockDevices;
    private final boolean anyFile;
    private final boolean anyBlockDevice;
    private final long maxCreateBytes;
    private final boolean grow;
    private final Set<String> nbdEndpoints;
    private final Set<Path> nbdSockets;
    private final boolean anyNbd;
    private final Set<String> rbdPools;
    private final boolean anyRbd;
    private final Path rbdConf;
    private final Path rbdKeyring;
    private final int maxTargets;
    private final long maxMemoryBytes;
    private final int maxParts;
    private final int maxDepth;
    private final int maxSpecLength;
    private final boolean exclusiveBlockDevices;
    private final AtomicInteger openTargets = new AtomicInteger();
    private final AtomicLong openMemory = new AtomicLong();

    private TargetPolicy(Builder b) {
        directories = List.copyOf(b.directories);
        blockDevices = Set.copyOf(b.blockDevices);
        anyFile = b.anyFile;
        anyBlockDevice = b.anyBlockDevice;
        maxCreateBytes = b.maxCreateBytes;
        grow = b.grow;
        nbdEndpoints = Set.copyOf(b.nbdEndpoints);
        nbdSockets = Set.copyOf(b.nbdSockets);
        anyNbd = b.anyNbd;
        rbdPools = Set.copyOf(b.rbdPools);
        anyRbd = b.anyRbd;
        rbdConf = b.rbdConf;
        rbdKeyring = b.rbdKeyring;
        maxTargets = b.maxTargets;
        maxMemoryBytes = b.maxMemoryBytes;
        maxParts = b.maxParts;
        maxDepth = b.maxDepth;
        maxSpecLength = b.maxSpecLength;
        exclusiveBlockDevices = b.exclusiveBlockDevices;
    }

    /**
     * The restrictive policy for services and embedding applications, one shared instance: no file targets (no
     * directory is allowed), no NBD, nothing created or grown, at most 16 targets open and 1 GiB of memory targets in
     * all, 8 parts per composition, 4 levels of nesting, 4096 characters. Build your own from {@link #builder()},
     * which starts from these values.
     *
     * @return the shared restrictive policy
     */
    public static TargetPolicy defaults() {
        return DEFAULTS;
    }

    /**
     * Root's own policy, the command line's default, one shared instance: any file or block device by any path
     * (symbolic links followed), any NBD server, creating and growing allowed when the request asks for it by name, no
     * limit on targets or memory; still bounded are the parser (64 KiB, 16 levels, 1024 parts per composition) and
     * what a path may name (a regular file or a block device, checked on the descriptor before it is opened for IO).
     *
     * @return the shared permissive policy
     */
    public static TargetPolicy permissive() {
        return PERMISSIVE;
    }

    /** {@return a builder starting from the restrictive {@link #defaults()}} */
    public static Builder builder() {
        return new Builder();
    }

    /** {@return the directories file targets may be in (absolute, normalized), empty for none} */
    public List<Path> directories() {
        return directories;
    }

    /** {@return the block devices file targets may name, by path} */
    public Set<Path> blockDevices() {
        return blockDevices;
    }

    /** {@return whether any path is allowed (the permissive policy)} */
    public boolean allowsAnyFile() {
        return anyFile;
    }

    /** {@return the largest file a request may create or grow one to, 0 if none may be created} */
    public long maxCreateBytes() {
        return maxCreateBytes;
    }

    /** {@return whether a request may grow a shorter file (up to {@link #maxCreateBytes()})} */
    public boolean allowsGrow() {
        return grow;
    }

    /** {@return the most targets open under this policy at once} */
    public int maxTargets() {
        return maxTargets;
    }

    /** {@return the most bytes of memory targets open under this policy at once} */
    public long maxMemoryBytes() {
        return maxMemoryBytes;
    }

    /** {@return the most parts of one composition, and of all the compositions of one spec together} */
    public int maxParts() {
        return maxParts;
    }

    /** {@return the deepest nesting of compositions (a composition of leaves is 1)} */
    public int maxDepth() {
        return maxDepth;
    }

    /** {@return the longest spec, in characters} */
    public int maxSpecLength() {
        return maxSpecLength;
    }

    /** {@return whether block devices are opened with O_EXCL (refused while mounted or held)} */
    public boolean exclusiveBlockDevices() {
        return exclusiveBlockDevices;
    }

    /** {@return targets open under this policy now} */
    public int openTargets() {
        return openTargets.get();
    }

    /** {@return bytes of memory targets open under this policy now} */
    public long openMemoryBytes() {
        return openMemory.get();
    }

    boolean allowsAnyBlockDevice() {
        return anyBlockDevice;
    }

    boolean allowsAnyNbd() {
        return anyNbd;
    }

    boolean allowsNbd(String host, int port) {
        return anyNbd || nbdEndpoints.contains(endpoint(host, port));
    }

    boolean allowsNbdSocket(Path socket) {
        return anyNbd || nbdSockets.contains(socket);
    }

    boolean allowsAnyRbd() {
        return anyRbd;
    }

    boolean allowsRbd(String pool, String clientId) {
        return anyRbd || rbdPools.contains(pool + "\0" + clientId);
    }

    /** {@return the Ceph configuration file RBD specs are opened with when they name none, or null} */
    public Path rbdConf() {
        return rbdConf;
    }

    /** {@return the keyring RBD specs are opened with when they name none, or null} */
    public Path rbdKeyring() {
        return rbdKeyring;
    }

    /**
     * Counts a target about to be opened: one more target and {@code memoryBytes} more bytes of memory targets.
     *
     * @return the lease, released when the target is closed or fails to open
     * @throws TargetPolicyException DEVICES or MEMORY when a limit would be passed (nothing is counted then)
     */
    Lease lease(long memoryBytes) {
        int n = openTargets.incrementAndGet();
        if (n > maxTargets) {
            openTargets.decrementAndGet();
            throw new TargetPolicyException(
                    Rule.DEVICES,
                    maxTargets + " targets are open under this policy, its most: " + "close a device first");
        }
        long total = openMemory.addAndGet(memoryBytes);
        if (memoryBytes > 0 && (total > maxMemoryBytes || total < 0)) {
            openMemory.addAndGet(-memoryBytes);
            openTargets.decrementAndGet();
            throw new TargetPolicyException(
                    Rule.MEMORY,
                    "memory targets of " + memoryBytes + " bytes would pass this "
                            + "policy's " + maxMemoryBytes + " bytes of memory targets in all (" + (total - memoryBytes)
                            + " open): ask for less, or close a device first");
        }
        return new Lease(this, memoryBytes);
    }

    private static String endpoint(String host, int port) {
        String h = host.toLowerCase(Locale.ROOT);
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1);
        }
        return h + "|" + port;
    }

    /** What one open target counts against its policy; {@link #release()} gives it back, once. */
    public static final class Lease {
        /** A lease of nothing (targets opened without a policy's count). */
        public static final Lease NONE = new Lease(null, 0);

        private final TargetPolicy policy;
        private final long memoryBytes;
        private final AtomicBoolean released = new AtomicBoolean();

        private Lease(TargetPolicy policy, long memoryBytes) {
            this.policy = policy;
            this.memoryBytes = memoryBytes;
        }

        /** Gives the target's count back to its policy; later calls do nothing. Thread-safe. */
        public void release() {
            if (policy != null && released.compareAndSet(false, true)) {
                policy.openMemory.addAndGet(-memoryBytes);
                policy.openTargets.decrementAndGet();
            }
        }
    }

    /** Builds a policy, starting from the restrictive {@link #defaults()}. Not thread-safe. */
    public static final class Builder {
        private final Set<Path> directories = new LinkedHashSet<>();
        private final Set<Path> blockDevices = new LinkedHashSet<>();
        private boolean anyFile;
        private boolean anyBlockDevice;
        private long maxCreateBytes;
        private boolean grow;
        private final Set<String> nbdEndpoints = new LinkedHashSet<>();
        private final Set<Path> nbdSockets = new LinkedHashSet<>();
        private boolean anyNbd;
        private final Set<String> rbdPools = new LinkedHashSet<>();
        private boolean anyRbd;
        private Path rbdConf;
        private Path rbdKeyring;
        private int maxTargets = 16;
        private long maxMemoryBytes = 1L << 30;
        private int maxParts = 8;
        private int maxDepth = 4;
        private int maxSpecLength = 4096;
        private boolean exclusiveBlockDevices = true;

        private Builder() {}

        /**
         * Allows files below this directory (and its subdirectories, never through a symbolic link). Give its real
         * path: paths are compared by name, and a spec must name the file through it.
         *
         * @param dir an absolute directory path
         * @return this builder
         * @throws IllegalArgumentException when it is relative or has {@code ..}
         */
        public Builder allowDirectory(Path dir) {
            directories.add(absolute(dir, "allowDirectory"));
            return this;
        }

        /**
         * Allows this block device, by this exact path (followed through symbolic links, as udev's
         * {@code /dev/disk/by-id} names are); opened with O_EXCL unless {@link #exclusiveBlockDevices(boolean)} says
         * otherwise.
         *
         * @param device an absolute path, such as {@code /dev/vdb}
         * @return this builder
         * @throws IllegalArgumentException when it is relative or has {@code ..}
         */
        public Builder allowBlockDevice(Path device) {
            blockDevices.add(absolute(device, "allowBlockDevice"));
            return this;
        }

        /**
         * Allows any path, relative or absolute, through symbolic links: root's own tool ({@link #permissive()}).
         * What it names must still be a regular file (or a block device with {@link #allowBlockDevices()}).
         *
         * @return this builder
         */
        public Builder allowAnyFile() {
            anyFile = true;
            return this;
        }

        /**
         * With {@link #allowAnyFile()}: allows any block device as well.
         *
         * @return this builder
         */
        public Builder allowBlockDevices() {
            anyBlockDevice = true;
            return this;
        }

        /**
         * Lets a request that asks for it create a missing file, of at most this many bytes (0, the default: none).
         *
         * @param maxBytes the largest file a request may create (and, with {@link #allowGrow}, grow one to)
         * @return this builder
         * @throws IllegalArgumentException when negative
         */
        public Builder allowCreate(long maxBytes) {
            if (maxBytes < 0) {
                throw new IllegalArgumentException("allowCreate: maxBytes must not be negative; was " + maxBytes);
            }
            maxCreateBytes = maxBytes;
            return this;
        }

        /**
         * Lets a request that asks for it extend a shorter regular file, up to {@link #allowCreate}'s bytes.
         *
         * @param allow whether growing is allowed (default false)
         * @return this builder
         */
        public Builder allowGrow(boolean allow) {
            grow = allow;
            return this;
        }

        /**
         * Allows the NBD server at this host and port ({@code nbd://host:port/...}, the port 10809 when the URI has
         * none), compared as written (case aside).
         *
         * @param host a host name or address, as clients write it
         * @param port its TCP port
         * @return this builder
         * @throws IllegalArgumentException when the port is out of range
         */
        public Builder allowNbd(String host, int port) {
            Objects.requireNonNull(host, "host");
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("allowNbd: port " + port + " is not a TCP port");
            }
            nbdEndpoints.add(endpoint(host, port));
            return this;
        }

        /**
         * Allows the NBD server at this Unix socket ({@code nbd+unix:///export?socket=PATH}), compared by name.
         *
         * @param socket an absolute path
         * @return this builder
         * @throws IllegalArgumentException when it is relative or has {@code ..}
         */
        public Builder allowNbdSocket(Path socket) {
            nbdSockets.add(absolute(socket, "allowNbdSocket"));
            return this;
        }

        /**
         * Allows any NBD server (root's own tool).
         *
         * @return this builder
         */
        public Builder allowAnyNbd() {
            anyNbd = true;
            return this;
        }

        /**
         * Allows the images of a Ceph pool, opened as one client ({@code rbd:POOL/IMAGE?id=CLIENT}; {@code admin} when
         * the spec names none).
         *
         * @param pool the pool's name
         * @param clientId the client's id (the part after {@code client.})
         * @return this builder
         */
        public Builder allowRbd(String pool, String clientId) {
            if (pool == null || pool.isEmpty() || clientId == null || clientId.isEmpty()) {
                throw new IllegalArgumentException("allowRbd: give a pool and a client id");
            }
            rbdPools.add(pool + "\0" + clientId);
            return this;
        }

        /**
         * Allows any pool and client, and specs that name their own configuration and keyring (root's own tool).
         *
         * @return this builder
         */
        public Builder allowAnyRbd() {
            anyRbd = true;
            return this;
        }

        /**
         * The Ceph configuration file and keyring that RBD specs are opened with when they name none (a spec from
         * others may not name its own: {@link TargetPolicyException.Rule#RBD_FILES}).
         *
         * @param conf the ceph.conf, or null for librados' default search
         * @param keyring the keyring, or null for the configuration's
         * @return this builder
         */
        public Builder rbdConfig(Path conf, Path keyring) {
            rbdConf = conf == null ? null : absolute(conf, "rbdConfig");
            rbdKeyring = keyring == null ? null : absolute(keyring, "rbdConfig");
            return this;
        }

        /**
         * The most targets open under the policy at once (each device is one; default 16).
         *
         * @param n at least 1
         * @return this builder
         */
        public Builder maxTargets(int n) {
            maxTargets = positive(n, "maxTargets");
            return this;
        }

        /**
         * The most bytes of memory targets open under the policy at once (default 1 GiB).
         *
         * @param bytes at least 1
         * @return this builder
         */
        public Builder maxMemoryBytes(long bytes) {
            if (bytes < 1) {
                throw new IllegalArgumentException("maxMemoryBytes must be positive; was " + bytes);
            }
            maxMemoryBytes = bytes;
            return this;
        }

        /**
         * The most parts of one composition, and of all the compositions of one spec together (default 8).
         *
         * @param n at least 2
         * @return this builder
         */
        public Builder maxParts(int n) {
            if (n < 2) {
                throw new IllegalArgumentException("maxParts must be at least 2 (a composition has two); was " + n);
            }
            maxParts = n;
            return this;
        }

        /**
         * The deepest nesting of compositions (default 4; {@code mirror(a,b)} is 1).
         *
         * @param n from 0 (no composition) to {@value #DEPTH_CEILING}
         * @return this builder
         */
        public Builder maxDepth(int n) {
            if (n < 0 || n > DEPTH_CEILING) {
                throw new IllegalArgumentException("maxDepth must be from 0 to " + DEPTH_CEILING + "; was " + n);
            }
            maxDepth = n;
            return this;
        }

        /**
         * The longest spec, in characters (default 4096).
         *
         * @param n from 1 to {@value #LENGTH_CEILING}
         * @return this builder
         */
        public Builder maxSpecLength(int n) {
            if (n < 1 || n > LENGTH_CEILING) {
                throw new IllegalArgumentException("maxSpecLength must be from 1 to " + LENGTH_CEILING + "; was " + n);
            }
            maxSpecLength = n;
            return this;
        }

        /**
         * Whether block devices are opened with O_EXCL, which the kernel refuses (EBUSY) while one is mounted or held
         * (default true; the permissive policy: false, as the command line always did).
         *
         * @param exclusive whether to
         * @return this builder
         */
        public Builder exclusiveBlockDevices(boolean exclusive) {
            exclusiveBlockDevices = exclusive;
            return this;
        }

        /** {@return the policy, with its own counts of open targets} */
        public TargetPolicy build() {
            return new TargetPolicy(this);
        }

        private static int positive(int n, String what) {
            if (n < 1) {
                throw new IllegalArgumentException(what + " must be positive; was " + n);
            }
            return n;
        }

        private static Path absolute(Path p, String what) {
            Objects.requireNonNull(p, what);
            if (!p.isAbsolute() || hasDotDot(p)) {
                throw new IllegalArgumentException(what + ": " + p + " must be an absolute path without ..");
            }
            return p.normalize();
        }
    }

    static boolean hasDotDot(Path p) {
        for (Path name : p) {
            if (name.toString().equals("..")) {
                return true;
            }
        }
        return false;
    }
}

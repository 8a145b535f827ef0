package dev.reactorubd.uring;

import io.netty.channel.IoRegistration;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.Version;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.VarHandle;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What this library needs of a Netty io_uring event loop that Netty does not expose: the fd of its ring (to register
 * a buffer table on it, for zero copy) and how full its submission queue is (so that a linked pair is never split by
 * a flush). Both are read from Netty's private fields through one mechanism, private method handles resolved once.
 *
 * <p>Why the version matters: a renamed field is found missing and nothing is read, but a field that kept its name and
 * changed its meaning would be read wrong, and a wrong fill could split a linked READ_FIXED / COMMIT pair (the commit
 * would then run unlinked, before the data arrived). So the handles are only used with the Netty versions this
 * library was tested on ({@value #TESTED_FROM} to {@value #TESTED_TO}, whose {@code LoopIoLinkTest} pins the
 * behaviour relied on: a pair at every fill of the queue, up to its edge). With any other version, or where the
 * module layout hides Netty's package, {@link #unavailable()} says why, one INFO line says so once, and the library
 * neither links nor serves in place: it copies, as on a kernel without zero copy.
 *
 * <p>Threading: {@link Room} reads the loop thread's own plain fields, so only on that loop.
 */
final class NettyRing {
    private static final Logger LOG = LoggerFactory.getLogger(NettyRing.class);
    /** The artifact whose version is checked. */
    static final String ARTIFACT = "netty-transport-classes-io_uring";
    /** The transport's native half, released with the classes under the same version. */
    static final String NATIVE_ARTIFACT = "netty-transport-native-io_uring";
    /** The oldest Netty tested (the one Spring Boot 4.0 manages). */
    static final String TESTED_FROM = "4.2.15.Final";
    /** The newest Netty tested. */
    static final String TESTED_TO = "4.2.18.Final";

    private static final MethodHandle RING_BUFFER;
    private static final MethodHandle FD;
    private static final MethodHandle SUBMISSION_QUEUE;
    private static final VarHandle HEAD;
    private static final VarHandle TAIL;
    private static final VarHandle ENTRIES;
    /** Why nothing is read, or null when the handles may be used. */
    private static final String UNAVAILABLE;

    static {
        MethodHandle ringBuffer = null;
        MethodHandle fd = null;
        MethodHandle sq = null;
        VarHandle head = null;
        VarHandle tail = null;
        VarHandle entries = null;
        String why = versionProblem(nettyVersion());
        if (why == null) {
            try {
                MethodHandles.Lookup lookup = MethodHandles.lookup();
                Class<?> ringClass = Class.forName("io.netty.channel.uring.RingBuffer");
                Class<?> sqClass = Class.forName("io.netty.channel.uring.SubmissionQueue");
                ringBuffer = MethodHandles.privateLookupIn(IoUringIoHandler.class, lookup)
                        .findGetter(IoUringIoHandler.class, "ringBuffer", ringClass);
                MethodHandles.Lookup ring = MethodHandles.privateLookupIn(ringClass, lookup);
                fd = ring.findVirtual(ringClass, "fd", MethodType.methodType(int.class));
                sq = ring.findVirtual(ringClass, "ioUringSubmissionQueue", MethodType.methodType(sqClass));
                MethodHandles.Lookup queue = MethodHandles.privateLookupIn(sqClass, lookup);
                head = queue.findVarHandle(sqClass, "head", int.class);
                tail = queue.findVarHandle(sqClass, "tail", int.class);
                entries = queue.findVarHandle(sqClass, "ringEntries", int.class);
            } catch (ReflectiveOperationException | RuntimeException e) {
                why = "cannot reach Netty's io_uring ring (" + e + "); on the module path, open it: --add-opens "
                        + "io.netty.transport.classes.io_uring/io.netty.channel.uring=dev.reactorubd";
            }
        }
        if (why != null) {
            LOG.info("zero copy and linked commits are off: {}", why);
        }
        RING_BUFFER = ringBuffer;
        FD = fd;
        SUBMISSION_QUEUE = sq;
        HEAD = head;
        TAIL = tail;
        ENTRIES = entries;
        UNAVAILABLE = why;
    }

    private NettyRing() {}

    /**
     * The version of Netty's io_uring classes in use: their jar manifest's, read when the package was defined (no IO
     * now, so it may be asked on an event loop), or else Netty's own record of its artifacts (a resource read once).
     *
     * @return the version, or null if neither says
     */
    static String nettyVersion() {
        String v = IoUringIoHandler.class.getPackage().getImplementationVersion();
        if (v != null) {
            return v;
        }
        Map<String, Version> recorded = Version.identify(IoUringIoHandler.class.getClassLoader());
        // A jar merged from Netty's (a shaded or fat jar) may keep one jar's record of the name and drop the others';
        // the native half is released with the classes under the same version.
        Version transport = recorded.getOrDefault(ARTIFACT, recorded.get(NATIVE_ARTIFACT));
        return transport == null ? null : transport.artifactVersion();
    }

    /**
     * Why {@code version} may not be used, or null if it is a tested one.
     *
     * @param version a Netty version such as {@code 4.2.18.Final}, or null when unknown
     * @return the reason, or null
     */
    static String versionProblem(String version) {
        if (version == null) {
            return "the version of Netty's io_uring transport is unknown (no Implementation-Version in its jar's "
                    + "manifest, no entry in META-INF/io.netty.versions.properties: a shaded or fat jar must merge "
                    + "that resource, e.g. with maven-shade-plugin's AppendingTransformer); this library reads "
                    + "Netty's private ring fields only on the versions it was tested on, " + TESTED_FROM + " to "
                    + TESTED_TO;
        }
        int[] v = parse(version);
        if (v == null || compare(v, parse(TESTED_FROM)) < 0 || compare(v, parse(TESTED_TO)) > 0) {
            return "Netty " + version + " is outside the versions this library was tested on (" + TESTED_FROM + " to "
                    + TESTED_TO + "), and it reads Netty's private ring fields: use one of those";
        }
        return null;
    }

    /** The numbers of {@code M.m.p.Final}, or null for any other form (snapshots, other qualifiers). */
    private static int[] parse(String version) {
        String[] p = version.split("\\.");
        if (p.length != 4 || !p[3].equals("Final")) {
            return null;
        }
        try {
            return new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2])};
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static int compare(int[] a, int[] b) {
        for (int i = 0; i < 3; i++) {
            if (a[i] != b[i]) {
                return Integer.compare(a[i], b[i]);
            }
        }
        return 0;
    }

    /** {@return why nothing of Netty's ring can be read here, or null when it can} */
    static String unavailable() {
        return UNAVAILABLE;
    }

    /**
     * The fd of the ring behind {@code handler}.
     *
     * @param handler a Netty io_uring handler
     * @return the ring's fd
     * @throws IllegalStateException (saying why) when it cannot be read here
     */
    static int fd(IoUringIoHandler handler) {
        if (UNAVAILABLE != null) {
            throw new IllegalStateException(UNAVAILABLE);
        }
        try {
            return (int) FD.invoke(RING_BUFFER.invoke(handler));
        } catch (Throwable e) {
            throw new IllegalStateException("cannot read the fd of Netty's io_uring ring: " + e, e);
        }
    }

    /**
     * The submission queue of the ring {@code registration} belongs to; on the loop.
     *
     * @param registration a registration with a Netty io_uring loop
     * @return its room, or null when it cannot be read (see the class comment)
     */
    static Room room(IoRegistration registration) {
        if (UNAVAILABLE != null || !(registration.attachment() instanceof IoUringIoHandler handler)) {
            return null;
        }
        try {
            return new Room(SUBMISSION_QUEUE.invoke(RING_BUFFER.invoke(handler)));
        } catch (Throwable e) {
            return null;
        }
    }

    /**
     * How many more SQEs one loop's submission queue takes before Netty has to flush it to the kernel. Two SQEs
     * linked with {@code IOSQE_IO_LINK} must reach the kernel in the same {@code io_uring_enter}: when Netty finds its
     * queue full it submits what it holds before adding the next SQE, and the first of a pair submitted alone runs
     * unlinked, while the second runs whenever it is submitted, not after the first.
     */
    static final class Room {
        private final Object queue;
        private final int entries;

        private Room(Object queue) {
            this.queue = queue;
            this.entries = (int) ENTRIES.get(queue);
        }

        /** {@return the SQEs the queue takes before Netty flushes it} */
        int free() {
            return entries - ((int) TAIL.get(queue) - (int) HEAD.get(queue));
        }

        /** {@return the count of SQEs ever enqueued (Netty's tail), to tell whether a call enqueued one} */
        int tail() {
            return (int) TAIL.get(queue);
        }
    }
}

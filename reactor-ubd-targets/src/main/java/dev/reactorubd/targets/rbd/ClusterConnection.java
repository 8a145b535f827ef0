package dev.reactorubd.targets.rbd;

import static java.lang.foreign.ValueLayout.ADDRESS;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.rbd.RbdException.Reason;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * One librados client ({@code rados_t}) shared by every image opened as the same client, through the same
 * configuration file and keyring, with the same options, and the pool contexts ({@code rados_ioctx_t}) of its
 * images. Each {@code rados_t} is a Ceph client of its own, with its messenger threads, its monitor session and its
 * OSD connections, so a process that serves a hundred images of one cluster would otherwise run a hundred of each.
 * The options are part of what is shared because librados applies them per client (its OSD timeout among them).
 *
 * <p>Counted: {@link #acquire} connects the first time (or again after the last {@link #release} shut it down), and
 * the last release of a pool context destroys it. A client the cluster blocklisted is {@linkplain #retire retired}:
 * the images that hold it keep it until they close, and the next open connects anew.
 *
 * <p>Threads: every method blocks (connecting waits for the monitors) and runs off the event loops; acquiring a
 * connection already made does not wait on the cluster.
 */
final class ClusterConnection {
    /** What makes two images share a client. */
    private record Key(String clientId, Path conf, Path keyring, RbdOptions options) {}

    private static final Map<Key, ClusterConnection> CONNECTIONS = new HashMap<>();

    private final Key key;
    private final Librbd lib;
    /** Guarded by {@code CONNECTIONS}. */
    private int references;
    /** Guarded by {@code CONNECTIONS}. */
    private boolean retired;
    /** Guarded by {@code this}; NULL until connected. */
    private MemorySegment cluster = MemorySegment.NULL;
    /** Guarded by {@code this}: pool name to its context and the images that use it. */
    private final Map<String, PoolContext> pools = new HashMap<>();

    private static final class PoolContext {
        final MemorySegment ioctx;
        int references;

        PoolContext(MemorySegment ioctx) {
            this.ioctx = ioctx;
        }
    }

    private ClusterConnection(Key key, Librbd lib) {
        this.key = key;
        this.lib = lib;
    }

    /**
     * The connection of the spec's client, configuration and keyring with these options, connected.
     *
     * @param lib     the loaded libraries
     * @param spec    the image to be opened (its pool is not used here)
     * @param options librados' bounds and options
     * @return the connection; {@link #release} it once
     * @throws RbdException naming the cause when the client cannot connect
     */
    static ClusterConnection acquire(Librbd lib, RbdImageSpec spec, RbdOptions options) {
        Key key = new Key(spec.clientId(), spec.conf(), spec.keyring(), options);
        ClusterConnection c;
        synchronized (CONNECTIONS) {
            c = CONNECTIONS.computeIfAbsent(key, k -> new ClusterConnection(k, lib));
            c.references++;
        }
        try {
            c.connect(spec);
            return c;
        } catch (RuntimeException e) {
            c.release();
            throw e;
        }
    }

    /** Connects unless connected: the first of several openers connects, the others wait for it here. */
    private synchronized void connect(RbdImageSpec spec) {
        if (!cluster.equals(MemorySegment.NULL)) {
            return;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            int rc = Librbd.call(
                    lib.radosCreate2, out, a.allocateFrom("ceph"), a.allocateFrom("client." + spec.clientId()), 0L);
            if (rc < 0) {
                throw RbdImage.fail(spec, Reason.OTHER, "rados_create2", rc, "");
            }
            MemorySegment handle = out.get(ADDRESS, 0);
            try {
                RbdImage.configure(lib, a, handle, spec, key.options());
                rc = Librbd.call(lib.radosConnect, handle);
                if (rc < 0) {
                    throw RbdImage.connectFailure(spec, key.options(), rc);
                }
            } catch (RuntimeException e) {
                Librbd.callVoid(lib.radosShutdown, handle);
                throw e;
            }
            cluster = handle;
        }
    }

    /**
     * The context of the spec's pool, created on its first use.
     *
     * @param spec the image to be opened
     * @return the pool context; {@link #releasePool} it once
     * @throws RbdException NO_POOL, PERMISSION or OTHER
     */
    synchronized MemorySegment pool(RbdImageSpec spec) {
        PoolContext p = pools.get(spec.pool());
        if (p == null) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(ADDRESS);
                int rc = Librbd.call(lib.ioctxCreate, cluster, a.allocateFrom(spec.pool()), out);
                if (rc < 0) {
                    throw rc == -Errno.ENOENT
                            ? RbdImage.fail(
                                    spec,
                                    Reason.NO_POOL,
                                    "rados_ioctx_create",
                                    rc,
                                    "the cluster has no pool '"
                                            + spec.pool() + "'; create it (ceph osd pool create " + spec.pool()
                                            + ", rbd pool init " + spec.pool() + ") or name another")
                            : RbdImage.accessOr(spec, "rados_ioctx_create", rc);
                }
                p = new PoolContext(out.get(ADDRESS, 0));
                pools.put(spec.pool(), p);
            }
        }
        p.references++;
        return p.ioctx;
    }

    /**
     * Lets go of a pool context that {@link #pool} gave; the last one out destroys it.
     *
     * @param pool the pool's name
     */
    synchronized void releasePool(String pool) {
        PoolContext p = pools.get(pool);
        if (p != null && --p.references == 0) {
            pools.remove(pool);
            Librbd.callVoid(lib.ioctxDestroy, p.ioctx);
        }
    }

    /** Keeps new opens off this client (the cluster blocklisted it): they connect a client of their own. */
    void retire() {
        synchronized (CONNECTIONS) {
            if (!retired) {
                retired = true;
                CONNECTIONS.remove(key, this);
            }
        }
    }

    /** Lets go of what {@link #acquire} gave; the last one out shuts the client down. */
    void release() {
        synchronized (CONNECTIONS) {
            if (--references > 0) {
                return;
            }
            if (!retired) {
                CONNECTIONS.remove(key, this);
            }
        }
        // No longer reachable: nobody else can acquire it now.
        synchronized (this) {
            pools.values().forEach(p -> Librbd.callVoid(lib.ioctxDestroy, p.ioctx));
            pools.clear();
            if (!cluster.equals(MemorySegment.NULL)) {
                Librbd.callVoid(lib.radosShutdown, cluster);
                cluster = MemorySegment.NULL;
            }
        }
    }
}

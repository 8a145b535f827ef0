package dev.reactorubd.targets.rbd;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.rbd.RbdException.Reason;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One open image ({@code rbd_image_t}) and the client it was opened through, which images of the same client share
 * ({@link ClusterConnection}). Every method here blocks on the cluster and runs off the event loops.
 */
final class RbdImage {
    /** librbd's {@code -EBLOCKLISTED}: another client broke this one's lock and blocklisted it. */
    static final int EBLOCKLISTED = Errno.ESHUTDOWN;

    final Librbd lib;
    final RbdImageSpec spec;
    private final ClusterConnection connection;
    final MemorySegment image;

    private RbdImage(Librbd lib, RbdImageSpec spec, ClusterConnection connection, MemorySegment image) {
        this.lib = lib;
        this.spec = spec;
        this.connection = connection;
        this.image = image;
    }

    /**
     * Connects to the cluster (or takes the client's connection already made) and opens the image (a snapshot read-only). Blocks for as long as librados' bounds
     * allow (set from {@code options}).
     *
     * @param spec the image
     * @param options the bounds and librados options
     * @return the open image
     * @throws RbdException naming the cause
     */
    static RbdImage open(RbdImageSpec spec, RbdOptions options) {
        Librbd lib = Librbd.get();
        checkReadable(spec, "configuration file", spec.conf());
        checkReadable(spec, "keyring", spec.keyring());
        ClusterConnection connection = ClusterConnection.acquire(lib, spec, options);
        try {
            MemorySegment ioctx = connection.pool(spec);
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(ADDRESS);
                MemorySegment name = a.allocateFrom(spec.image());
                MemorySegment snap = spec.readOnly() ? a.allocateFrom(spec.snapshot()) : MemorySegment.NULL;
                int rc = spec.readOnly()
                        ? Librbd.call(lib.openReadOnly, ioctx, name, out, snap)
                        : Librbd.call(lib.open, ioctx, name, out, MemorySegment.NULL);
                if (rc < 0) {
                    if (rc == -EBLOCKLISTED) {
                        connection.retire();
                    }
                    RbdException failure = openFailure(lib, a, spec, ioctx, rc); // looks at the pool first
                    connection.releasePool(spec.pool());
                    throw failure;
                }
                return new RbdImage(lib, spec, connection, out.get(ADDRESS, 0));
            }
        } catch (RuntimeException e) {
            connection.release();
            throw e;
        }
    }

    private static void checkReadable(RbdImageSpec spec, String what, Path path) {
        if (path != null && !Files.isReadable(path)) {
            throw new RbdException(
                    Reason.CONFIGURATION,
                    "cannot open RBD image " + spec.imageName() + ": the " + what + " " + path
                            + (Files.exists(path) ? " is not readable" : " does not exist")
                            + "; give conf= and keyring= of "
                            + "the cluster (rbd:POOL/IMAGE?conf=PATH&keyring=PATH)",
                    Files.exists(path) ? Errno.EACCES : Errno.ENOENT,
                    null);
        }
    }

    static void configure(Librbd lib, Arena a, MemorySegment cluster, RbdImageSpec spec, RbdOptions o) {
        int rc = Librbd.call(
                lib.radosConfReadFile,
                cluster,
                spec.conf() == null
                        ? MemorySegment.NULL
                        : a.allocateFrom(spec.conf().toString()));
        if (rc < 0 && (spec.conf() != null || !o.config().containsKey("mon_host"))) {
            throw fail(
                    spec,
                    Reason.CONFIGURATION,
                    "rados_conf_read_file",
                    rc,
                    spec.conf() != null
                            ? "librados cannot read " + spec.conf() + " as a Ceph configuration"
                            : "no Ceph configuration found ($CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, "
                                    + "./ceph.conf): give conf=PATH");
        }
        Map<String, String> options = new LinkedHashMap<>();
        // A library's client keeps to its log file: its errors reach the caller as exceptions.
        options.put("log_to_stderr", "false");
        options.put("err_to_stderr", "false");
        if (spec.keyring() != null) {
            options.put("keyring", spec.keyring().toString());
        }
        options.putAll(o.config());
        long connect = Math.max(1, o.connectTimeout().toSeconds());
        options.put("client_mount_timeout", Long.toString(Math.max(1, connect / 10)));
        options.put("rados_mon_op_timeout", Long.toString(connect));
        options.put("rados_osd_op_timeout", Long.toString(o.osdTimeout().toSeconds()));
        for (Map.Entry<String, String> e : options.entrySet()) {
            rc = Librbd.call(lib.radosConfSet, cluster, a.allocateFrom(e.getKey()), a.allocateFrom(e.getValue()));
            if (rc < 0) {
                throw fail(
                        spec,
                        Reason.CONFIGURATION,
                        "rados_conf_set",
                        rc,
                        "librados refused option " + e.getKey() + "=" + e.getValue()
                                + (rc == -Errno.ENOENT ? " (no such option)" : " (a value of the wrong form)"));
            }
        }
    }

    static RbdException connectFailure(RbdImageSpec spec, RbdOptions options, int rc) {
        int errno = -rc;
        if (errno == Errno.ETIMEDOUT) {
            return fail(
                    spec,
                    Reason.UNREACHABLE,
                    "rados_connect",
                    rc,
                    "no monitor answered within "
                            + options.connectTimeout()
                            + "; check that the cluster is up and that the configuration's mon_host "
                            + "names its monitors");
        }
        if (errno == Errno.EACCES || errno == Errno.EPERM) {
            return fail(
                    spec,
                    Reason.AUTHENTICATION,
                    "rados_connect",
                    rc,
                    "the cluster refused client." + spec.clientId()
                            + ": check the client id and that its keyring holds that client's key");
        }
        if (errno == Errno.ENOENT) {
            return fail(
                    spec,
                    Reason.CONFIGURATION,
                    "rados_connect",
                    rc,
                    "no key for client." + spec.clientId()
                            + " or no monitor address was found; give keyring=PATH, and a configuration with mon_host");
        }
        return fail(spec, Reason.OTHER, "rados_connect", rc, "check the cluster's health (ceph -s)");
    }

    private static RbdException openFailure(Librbd lib, Arena a, RbdImageSpec spec, MemorySegment ioctx, int rc) {
        if (rc == -Errno.ENOENT && spec.readOnly()) {
            MemorySegment out = a.allocate(ADDRESS);
            int base = Librbd.call(lib.openReadOnly, ioctx, a.allocateFrom(spec.image()), out, MemorySegment.NULL);
            if (base == 0) {
                Librbd.call(lib.close, out.get(ADDRESS, 0));
                return fail(
                        spec,
                        Reason.NO_SNAPSHOT,
                        "rbd_open_read_only",
                        rc,
                        "image " + spec.pool() + "/"
                                + spec.image() + " has no snapshot '" + spec.snapshot()
                                + "'; list them with rbd snap ls "
                                + spec.pool() + "/" + spec.image());
            }
        }
        if (rc == -Errno.ENOENT) {
            return fail(
                    spec,
                    Reason.NO_IMAGE,
                    spec.readOnly() ? "rbd_open_read_only" : "rbd_open",
                    rc,
                    "pool '"
                            + spec.pool() + "' has no image '" + spec.image() + "'; create it (rbd create --size SIZE "
                            + spec.pool() + "/" + spec.image() + ") or name another");
        }
        return accessOr(spec, spec.readOnly() ? "rbd_open_read_only" : "rbd_open", rc);
    }

    static RbdException accessOr(RbdImageSpec spec, String call, int rc) {
        if (rc == -Errno.EACCES || rc == -Errno.EPERM) {
            return fail(
                    spec,
                    Reason.PERMISSION,
                    call,
                    rc,
                    "client." + spec.clientId() + " lacks the capabilities "
                            + "for pool '" + spec.pool() + "'; grant them (ceph auth caps client." + spec.clientId()
                            + " mon 'profile rbd' osd 'profile rbd pool=" + spec.pool() + "')");
        }
        if (rc == -EBLOCKLISTED) {
            return fail(spec, Reason.OTHER, call, rc, "the cluster blocklisted this client; open the image again");
        }
        return fail(spec, Reason.OTHER, call, rc, "check the cluster's health (ceph -s)");
    }

    static RbdException fail(RbdImageSpec spec, Reason reason, String call, int rc, String what) {
        return new RbdException(
                reason,
                "cannot open RBD image " + spec.imageName() + " as client." + spec.clientId() + ": " + call
                        + " answered " + Errno.name(-rc) + (what.isEmpty() ? "" : "; " + what),
                rc,
                null);
    }

    /**
     * The image's size now: librbd re-reads the header first when a watch said it changed.
     *
     * @return the size in bytes
     * @throws RbdException when librbd cannot tell
     */
    long size() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            int rc = Librbd.call(lib.getSize, image, out);
            if (rc < 0) {
                throw new RbdException(
                        Reason.OTHER, "rbd_get_size of " + spec.imageName() + " answered " + Errno.name(-rc), rc, null);
            }
            return out.get(JAVA_LONG, 0);
        }
    }

    /** A header watch: librbd's handle and the listener's number. */
    record Watch(long handle, long arg) {}

    /**
     * Watches the image's header: {@code listener} runs on librbd's thread at each update.
     *
     * @param listener what to run; must return at once
     * @return the watch, for {@link #unwatch}
     * @throws RbdException when librbd refuses the watch
     */
    Watch watch(Runnable listener) {
        long arg = ImageWatch.register(listener);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            int rc = Librbd.call(lib.updateWatch, image, out, lib.updateStub(), MemorySegment.ofAddress(arg));
            if (rc < 0) {
                ImageWatch.unregister(arg);
                throw new RbdException(
                        Reason.OTHER,
                        "rbd_update_watch of " + spec.imageName() + " answered " + Errno.name(-rc),
                        rc,
                        null);
            }
            return new Watch(out.get(JAVA_LONG, 0), arg);
        }
    }

    /**
     * Ends a watch; waits for a callback under way, so never call it from the callback.
     *
     * @param watch what {@link #watch} returned
     */
    void unwatch(Watch watch) {
        Librbd.call(lib.updateUnwatch, image, watch.handle());
        ImageWatch.unregister(watch.arg());
    }

    /** Drops librbd's cached data, after the image changed under it (a resize). */
    void invalidateCache() {
        Librbd.call(lib.invalidateCache, image);
    }

    /**
     * Closes the image (librbd flushes its cache and waits for the operations in flight), then lets go of its pool
     * context and client, which the last image of each shuts down.
     *
     * @return what {@code rbd_close} answered: 0 or {@code -errno}
     */
    int close() {
        int rc = Librbd.call(lib.close, image);
        if (rc == -EBLOCKLISTED) {
            connection.retire();
        }
        connection.releasePool(spec.pool());
        connection.release();
        return rc;
    }
}

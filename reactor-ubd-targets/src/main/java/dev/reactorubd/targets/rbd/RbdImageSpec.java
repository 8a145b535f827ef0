package dev.reactorubd.targets.rbd;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * Which RBD image to serve and how to reach its cluster, in qemu's convention:
 * {@code rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH]}. Without {@code conf}, librados reads
 * {@code /etc/ceph/ceph.conf} (or {@code $CEPH_CONF}); without {@code id}, the client is {@code client.admin};
 * without {@code keyring}, the configuration's. A snapshot is served read-only.
 *
 * @param pool the pool's name
 * @param image the image's name in the pool
 * @param snapshot the snapshot's name, or null for the image itself (read-write)
 * @param conf the Ceph configuration file, or null for librados' default search
 * @param id the client's id (the part after {@code client.}), or null for {@code admin}
 * @param keyring the keyring file, or null for the configuration's
 */
public record RbdImageSpec(String pool, String image, String snapshot, Path conf, String id, Path keyring) {
    /** The prefix of the string form. */
    public static final String SCHEME = "rbd:";

    /**
     * Checks the names.
     *
     * @throws IllegalArgumentException when a name is empty or holds a character Ceph's names cannot
     */
    public RbdImageSpec {
        name("pool", pool, "/@?&");
        name("image", image, "/@?&");
        if (snapshot != null) {
            name("snapshot", snapshot, "/@?&");
        }
        if (id != null) {
            name("client id", id, "/@?&. ");
        }
    }

    /**
     * A read-write image reached through librados' default configuration as {@code client.admin}.
     *
     * @param pool the pool's name
     * @param image the image's name
     * @return the spec
     */
    public static RbdImageSpec of(String pool, String image) {
        return new RbdImageSpec(pool, image, null, null, null, null);
    }

    /**
     * Parses {@code rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH]} (the {@code rbd:} prefix may be left out).
     *
     * @param text the spec
     * @return the spec
     * @throws IllegalArgumentException naming what is wrong, when the text is not such a spec
     */
    public static RbdImageSpec parse(String text) {
        Objects.requireNonNull(text, "text");
        String s = text.startsWith(SCHEME) ? text.substring(SCHEME.length()) : text;
        String query = null;
        int q = s.indexOf('?');
        if (q >= 0) {
            query = s.substring(q + 1);
            s = s.substring(0, q);
        }
        int slash = s.indexOf('/');
        if (slash < 0) {
            throw new IllegalArgumentException("RBD image '" + text
                    + "' names no pool: write rbd:POOL/IMAGE[@SNAP][?conf=PATH&id=NAME&keyring=PATH]");
        }
        if (s.indexOf('/', slash + 1) >= 0) {
            throw new IllegalArgumentException("RBD image '" + text
                    + "' has a namespace (POOL/NAMESPACE/IMAGE), which the RBD target does not serve: use an image "
                    + "of the pool's default namespace");
        }
        String pool = s.substring(0, slash);
        String image = s.substring(slash + 1);
        String snapshot = null;
        int at = image.indexOf('@');
        if (at >= 0) {
            snapshot = image.substring(at + 1);
            image = image.substring(0, at);
        }
        Path conf = null;
        String id = null;
        Path keyring = null;
        if (query != null && !query.isEmpty()) {
            for (String kv : query.split("&", -1)) {
                int eq = kv.indexOf('=');
                String k = eq < 0 ? kv : kv.substring(0, eq);
                String v = eq < 0 ? "" : kv.substring(eq + 1);
                if (v.isEmpty()) {
                    throw new IllegalArgumentException(
                            "RBD image '" + text + "': option '" + k + "' has no value; write " + k + "=VALUE");
                }
                switch (k) {
                    case "conf" -> conf = Path.of(v);
                    case "id" -> id = v;
                    case "keyring" -> keyring = Path.of(v);
                    default ->
                        throw new IllegalArgumentException("RBD image '" + text + "': unknown option '" + k
                                + "'; the options are conf, id and keyring");
                }
            }
        }
        try {
            return new RbdImageSpec(pool, image, snapshot, conf, id, keyring);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("RBD image '" + text + "': " + e.getMessage(), e);
        }
    }

    private static void name(String what, String value, String forbidden) {
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("the " + what + " name is empty");
        }
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (forbidden.indexOf(c) >= 0 || c < 0x20) {
                throw new IllegalArgumentException("the " + what + " name '" + value + "' holds '" + c + "'");
            }
        }
    }

    /** {@return whether a snapshot is named, so that the image is served read-only} */
    public boolean readOnly() {
        return snapshot != null;
    }

    /** {@return the client's id: the one given, or {@code admin}} */
    public String clientId() {
        return id == null ? "admin" : id;
    }

    /** {@return the snapshot's name, if one is named} */
    public Optional<String> snapshotName() {
        return Optional.ofNullable(snapshot);
    }

    /** {@return {@code POOL/IMAGE[@SNAP]}, as Ceph's tools name an image} */
    public String imageName() {
        return pool + "/" + image + (snapshot == null ? "" : "@" + snapshot);
    }

    /** {@return the string form, which {@link #parse} reads back} */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder(SCHEME).append(imageName());
        char sep = '?';
        if (conf != null) {
            b.append(sep).append("conf=").append(conf);
            sep = '&';
        }
        if (id != null) {
            b.append(sep).append("id=").append(id);
            sep = '&';
        }
        if (keyring != null) {
            b.append(sep).append("keyring=").append(keyring);
        }
        return b.toString();
    }
}

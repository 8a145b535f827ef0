package dev.reactorubd.targets.rbd;

import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * How an {@link RbdBackend} talks to its cluster. Immutable; {@link #defaults()} are the values below, and each
 * {@code with} method returns a changed copy.
 *
 * <ul>
 *   <li>{@code connectTimeout} (default 10 s): connecting to the monitors and authenticating, and opening the image.
 *       librados' own bounds are set from it ({@code client_mount_timeout} to a tenth of it, as librados retries ten
 *       times, and {@code rados_mon_op_timeout} to all of it), and the open fails with
 *       {@link RbdException.Reason#UNREACHABLE} when it has not finished by then, even where librados would wait on.</li>
 *   <li>{@code osdTimeout} (default 20 s): librados' {@code rados_osd_op_timeout}, the longest an operation waits for
 *       its OSD; past it the request fails with {@code ETIMEDOUT}. Keep it below the server's request timeout (30 s
 *       by default), so that librbd gives the operation up before the server answers the kernel for it: an operation
 *       librbd still holds cannot land after the tag serves a later write. Zero waits forever (librados' default):
 *       requests to a dead OSD then wait until it returns, and the server's request timeout answers the kernel.</li>
 *   <li>{@code config}: more librados options ({@code rados_conf_set}), applied after the configuration file and
 *       before these bounds, such as {@code rbd_cache=false}. An unknown option fails the open.</li>
 * </ul>
 *
 * @param connectTimeout the bound of connecting and opening, positive
 * @param osdTimeout librados' bound of one OSD operation, zero for none
 * @param config more librados options, in the order given
 */
public record RbdOptions(Duration connectTimeout, Duration osdTimeout, Map<String, String> config) {
    private static final RbdOptions DEFAULTS = new RbdOptions(Duration.ofSeconds(10), Duration.ofSeconds(20), Map.of());

    /**
     * Checks the bounds.
     *
     * @throws IllegalArgumentException when the connect timeout is not at least a second, or the OSD timeout is
     *         negative or not whole seconds
     */
    public RbdOptions {
        Objects.requireNonNull(connectTimeout, "connectTimeout");
        Objects.requireNonNull(osdTimeout, "osdTimeout");
        if (connectTimeout.compareTo(Duration.ofSeconds(1)) < 0) {
            throw new IllegalArgumentException("the RBD connect timeout must be at least 1 s; was " + connectTimeout);
        }
        if (osdTimeout.isNegative() || osdTimeout.toNanos() % 1_000_000_000L != 0) {
            throw new IllegalArgumentException(
                    "the RBD OSD timeout must be whole seconds (librados counts seconds), or 0; was " + osdTimeout);
        }
        config = Collections.unmodifiableMap(new LinkedHashMap<>(Objects.requireNonNull(config, "config")));
    }

    /** {@return the defaults: 10 s to connect and open, 20 s per OSD operation, no other options} */
    public static RbdOptions defaults() {
        return DEFAULTS;
    }

    /**
     * A copy with another connect timeout.
     *
     * @param timeout the bound of connecting and opening, at least 1 s
     * @return the copy
     */
    public RbdOptions withConnectTimeout(Duration timeout) {
        return new RbdOptions(timeout, osdTimeout, config);
    }

    /**
     * A copy with another OSD timeout.
     *
     * @param timeout librados' bound of one OSD operation, whole seconds; zero for none
     * @return the copy
     */
    public RbdOptions withOsdTimeout(Duration timeout) {
        return new RbdOptions(connectTimeout, timeout, config);
    }

    /**
     * A copy with one more librados option.
     *
     * @param option the option's name, such as {@code rbd_cache}
     * @param value its value
     * @return the copy
     */
    public RbdOptions withConfig(String option, String value) {
        Map<String, String> m = new LinkedHashMap<>(config);
        m.put(Objects.requireNonNull(option, "option"), Objects.requireNonNull(value, "value"));
        return new RbdOptions(connectTimeout, osdTimeout, m);
    }
}

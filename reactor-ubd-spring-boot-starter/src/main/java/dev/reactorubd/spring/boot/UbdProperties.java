package dev.reactorubd.spring.boot;

import java.time.Duration;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * {@code ubd.*}: the server the starter makes and the devices it serves from the application's start to its shutdown.
 * The targets are opened under the policy of {@code ubd.targets.*} ({@link TargetPolicyProperties}), closed by
 * default: a {@code file:} target needs {@code ubd.targets.file-directories}, an NBD server {@code nbd-servers}.
 *
 * <pre>
 * ubd.devices[0].target=memory:64M
 * ubd.devices[0].queues=2
 * </pre>
 *
 * @param enabled         whether the starter makes a server at all (default true)
 * @param devices         the devices to serve at start, in order
 * @param eventLoops      io_uring event loops of the server (0: one per CPU), unless {@code shareEventLoops}
 * @param shareEventLoops run the application's Reactor Netty HTTP server on the devices' io_uring loops (WebFlux)
 * @param requestTimeout  how long a backend may take to answer a request before it fails with ETIMEDOUT
 * @param startTimeout    how long the application's start waits for each device to be served
 * @param stopTimeout     how long its shutdown waits for each device to be deleted or handed over
 */
@ConfigurationProperties("ubd")
public record UbdProperties(
        @DefaultValue("true") boolean enabled,
        @DefaultValue List<Device> devices,
        @DefaultValue("0") int eventLoops,
        @DefaultValue("false") boolean shareEventLoops,
        @DefaultValue("30s") Duration requestTimeout,
        @DefaultValue("60s") Duration startTimeout,
        @DefaultValue("60s") Duration stopTimeout) {

    /**
     * One device, {@code ubd.devices[N].*}.
     *
     * @param target     the target spec ({@code memory:64M}, {@code file:/var/lib/ubd/a.img}, {@code nbd://host/x},
     *                   {@code mirror(...)}; docs/backends.md), opened under {@code ubd.targets.*}
     * @param size       the device's size, e.g. {@code 10G} (unset: the target's)
     * @param id         the device id N of /dev/ublkbN (unset or -1: the kernel picks one)
     * @param queues     hardware queues (default 1)
     * @param depth      requests in flight per queue (default 128)
     * @param readOnly   serve the target read-only
     * @param recovery   what the device's IO does while no server runs after a crash (default NONE: the kernel
     *                   deletes it with its server)
     * @param onShutdown what the application's shutdown does with the device (default DELETE)
     */
    public record Device(
            String target,
            String size,
            @DefaultValue("-1") int id,
            @DefaultValue("1") int queues,
            @DefaultValue("128") int depth,
            @DefaultValue("false") boolean readOnly,
            @DefaultValue("NONE") Recovery recovery,
            @DefaultValue("DELETE") Shutdown onShutdown) {}

    /** What a device's IO does while no server runs; each but NONE makes the device recoverable. */
    public enum Recovery {
        /** Not recoverable: the device goes with its server. */
        NONE,
        /** IO waits for a new server; requests in flight at the crash are issued again (USER_RECOVERY_REISSUE). */
        REISSUE,
        /** IO waits for a new server; requests in flight are requeued (USER_RECOVERY). */
        REQUEUE,
        /** IO fails at once until a new server recovers the device (USER_RECOVERY_FAIL_IO, Linux 6.13+). */
        FAIL_IO
    }

    /** What the application's shutdown does with a device. */
    public enum Shutdown {
        /** Stops and deletes it: /dev/ublkbN goes away. */
        DELETE,
        /**
         * Quiesces it and leaves it to another server, which recovers it (a new version of the application):
         * needs {@code recovery} and a kernel with QUIESCE (Linux 6.16+).
         */
        HAND_OVER
    }
}

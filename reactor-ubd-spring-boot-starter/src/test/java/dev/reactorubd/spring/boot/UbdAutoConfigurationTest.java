package dev.reactorubd.spring.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetPolicyException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;

/**
 * What the starter does without the ublk driver (the host): the properties as Spring binds them, a start that fails
 * saying to load the driver, the starter off, and device properties refused before any device is added, each naming
 * its property. Serving devices is {@code StarterDeviceTest}'s, in the test VM.
 */
class UbdAutoConfigurationTest {
    private final ApplicationContextRunner runner =
            new ApplicationContextRunner().withConfiguration(AutoConfigurations.of(UbdAutoConfiguration.class));

    private static UbdProperties bind(Map<String, String> properties) {
        return new Binder(new MapConfigurationPropertySource(properties)).bindOrCreate("ubd", UbdProperties.class);
    }

    @Test
    void devicePropertiesBindWithTheirDefaults() {
        UbdProperties p = bind(Map.of(
                "ubd.devices[0].target", "memory:64M",
                "ubd.devices[1].target", "file:/var/lib/ubd/a.img",
                "ubd.devices[1].queues", "2",
                "ubd.devices[1].recovery", "fail-io",
                "ubd.devices[1].on-shutdown", "hand-over",
                "ubd.devices[1].size", "1G"));
        assertEquals(2, p.devices().size());
        UbdProperties.Device a = p.devices().get(0);
        assertEquals(
                new UbdProperties.Device(
                        "memory:64M",
                        null,
                        -1,
                        1,
                        128,
                        false,
                        UbdProperties.Recovery.NONE,
                        UbdProperties.Shutdown.DELETE),
                a);
        UbdProperties.Device b = p.devices().get(1);
        assertEquals(2, b.queues());
        assertEquals(UbdProperties.Recovery.FAIL_IO, b.recovery());
        assertEquals(UbdProperties.Shutdown.HAND_OVER, b.onShutdown());
        assertEquals("1G", b.size());
        assertTrue(p.enabled());
        assertEquals(java.time.Duration.ofSeconds(30), p.requestTimeout());
    }

    @Test
    void withoutTheDriverTheStartFailsSayingToLoadIt() {
        Assumptions.assumeFalse(Files.exists(Path.of("/dev/ublk-control")), "this host has ublk_drv loaded");
        runner.withPropertyValues("ubd.devices[0].target=memory:8M").run(context -> {
            Throwable failure = context.getStartupFailure();
            Throwable root = failure;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            assertInstanceOf(UbdModuleNotLoadedException.class, root, failure.toString());
            assertTrue(root.getMessage().contains("modprobe ublk_drv"), root.getMessage());
        });
    }

    @Test
    void turnedOffItMakesNothing() {
        runner.withPropertyValues("ubd.enabled=false", "ubd.devices[0].target=memory:8M")
                .run(context -> {
                    assertEquals(null, context.getStartupFailure());
                    assertTrue(context.getBeansOfType(UbdServer.class).isEmpty());
                    assertTrue(context.getBeansOfType(UbdDevices.class).isEmpty());
                });
    }

    /** Refused before the server is asked for anything: these devices need no server at all (null here). */
    private static IllegalStateException refused(TargetPolicy policy, Map<String, String> properties) {
        UbdDevices devices = new UbdDevices(null, bind(properties), policy);
        IllegalStateException e = assertThrows(IllegalStateException.class, devices::start);
        assertEquals(List.of(), devices.devices());
        return e;
    }

    @Test
    void badDevicesFailTheStartNamingTheirProperty() {
        TargetPolicy closed = TargetPolicy.defaults();
        IllegalStateException noTarget = refused(closed, Map.of("ubd.devices[0].queues", "2"));
        assertTrue(noTarget.getMessage().startsWith("ubd.devices[0]"), noTarget.getMessage());
        assertTrue(noTarget.getMessage().contains("ubd.devices[0].target is not set"), noTarget.getMessage());

        IllegalStateException handOver = refused(
                closed, Map.of("ubd.devices[0].target", "memory:8M", "ubd.devices[0].on-shutdown", "hand-over"));
        assertTrue(handOver.getMessage().contains("needs a recovery mode"), handOver.getMessage());

        // The policy of ubd.targets.* is closed by default: no file is reached until a directory is allowed.
        IllegalStateException file = refused(closed, Map.of("ubd.devices[0].target", "file:/etc/shadow"));
        assertInstanceOf(TargetPolicyException.class, file.getCause(), file.toString());
        assertEquals(TargetPolicyException.Rule.FILE_DIRECTORY, ((TargetPolicyException) file.getCause()).rule());
        assertTrue(file.getMessage().startsWith("ubd.devices[0] (file:/etc/shadow) could not be served"));
    }
}

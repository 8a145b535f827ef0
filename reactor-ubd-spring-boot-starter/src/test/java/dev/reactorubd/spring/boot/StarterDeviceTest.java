package dev.reactorubd.spring.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.autoconfigure.ImportAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.Status;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;

/**
 * An application with the starter and nothing else of ours, under the real ublk driver: its device is there when the
 * application has started, takes IO, shows in the health and the meters, and is gone when the application stops; a
 * device handed over at shutdown stays for the next server.
 *
 * <p>Bounds assumed (the VM emulates its CPU): 120 s for a start, 60 s for a shell command.
 */
@DeviceTest
class StarterDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(120);

    /** The application: the starter's auto-configuration and a meter registry. */
    @SpringBootConfiguration
    @ImportAutoConfiguration(UbdAutoConfiguration.class)
    static class App {
        @Bean
        MeterRegistry meterRegistry() {
            return new SimpleMeterRegistry();
        }
    }

    private static ConfigurableApplicationContext start(String... properties) {
        return new SpringApplicationBuilder(App.class)
                .web(WebApplicationType.NONE)
                .properties(properties)
                .run();
    }

    @Test
    void twoPropertiesMakeADeviceAtStartThatIsDeletedAtShutdown() throws Exception {
        ConfigurableApplicationContext context = start("ubd.devices[0].target=memory:64M", "ubd.devices[0].queues=2");
        UbdDevice device;
        try {
            UbdDevices devices = context.getBean(UbdDevices.class);
            assertEquals(1, devices.devices().size());
            device = devices.devices().get(0).device();
            assertTrue(Files.exists(Path.of(device.blockDevicePath())), device.blockDevicePath());
            assertEquals(2, device.queues().size());
            assertEquals(
                    64L << 20,
                    Long.parseLong(Vm.sh(60, "blockdev --getsize64 " + device.blockDevicePath())
                            .requireSuccess()
                            .output()
                            .strip()));
            Devices.fioVerify(device, "starter", 16L << 20);

            Health health = context.getBean(UbdHealthIndicator.class).health().block(WAIT);
            assertEquals(Status.UP, health.getStatus());
            @SuppressWarnings("unchecked")
            Map<String, Object> d = (Map<String, Object>) health.getDetails().get("ubd.devices[0]");
            assertEquals(device.blockDevicePath(), d.get("blockDevice"));
            assertEquals("memory:64M", d.get("target"));

            MeterRegistry registry = context.getBean(MeterRegistry.class);
            assertFalse(registry.find("ubd.requests").meters().isEmpty(), "the queues' meters: " + names(registry));
        } finally {
            context.close();
        }
        assertFalse(Files.exists(Path.of(device.blockDevicePath())), device.blockDevicePath() + " after shutdown");
        assertFalse(Vm.deviceExists(device.id()), "device " + device.id() + " after shutdown");
    }

    @Test
    void aDeviceHandedOverAtShutdownIsLeftForTheNextServer() throws Exception {
        Vm.assumeFeature(UblkFeature.QUIESCE);
        ConfigurableApplicationContext context = start(
                "ubd.devices[0].target=memory:16M",
                "ubd.devices[0].recovery=reissue",
                "ubd.devices[0].on-shutdown=hand-over");
        UbdDevice device = context.getBean(UbdDevices.class).devices().get(0).device();
        Vm.sh(60, "printf starter | dd of=" + device.blockDevicePath() + " bs=4k conv=sync oflag=direct status=none")
                .requireSuccess();
        context.close();
        assertTrue(Vm.deviceExists(device.id()), "device " + device.id() + " is left for the next server");
        // The next server: another process would recover it the same way (ubd recover).
        try (UbdServer next = UbdServer.create()) {
            UbdDevice recovered =
                    next.recover(device.id(), new MemoryBackend(16 << 20)).block(WAIT);
            Vm.sh(60, "dd if=" + recovered.blockDevicePath() + " of=/dev/null bs=4k count=1 iflag=direct status=none")
                    .requireSuccess();
            recovered.close().block(WAIT);
        }
        assertFalse(Vm.deviceExists(device.id()), "device " + device.id() + " deleted by its next server");
    }

    private static String names(MeterRegistry registry) {
        return registry.getMeters().stream()
                .map(m -> m.getId().getName())
                .distinct()
                .toList()
                .toString();
    }
}

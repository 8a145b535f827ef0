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
import java.io.RandomAccessFile;
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
 * device handed over at shutdown is recovered, with its data, by the application's next start.
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
        // The device tests' class path also has slf4j-simple (the library's tests): Spring Boot leaves logging to
        // SLF4J.
        System.setProperty("org.springframework.boot.logging.LoggingSystem", "none");
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
    void aDeviceHandedOverAtShutdownIsRecoveredByTheNextStartWithItsData() throws Exception {
        Vm.assumeFeature(UblkFeature.QUIESCE);
        Path dir = Files.createTempDirectory("ubd-starter");
        Path image = dir.resolve("a.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        int id = 700 + (int) (ProcessHandle.current().pid() % 100);
        String[] properties = {
            "ubd.targets.file-directories=" + dir.toRealPath(),
            "ubd.devices[0].target=file:" + image.toRealPath(),
            "ubd.devices[0].id=" + id,
            "ubd.devices[0].recovery=reissue",
            "ubd.devices[0].on-shutdown=hand-over"
        };
        ConfigurableApplicationContext first = start(properties);
        String b = first.getBean(UbdDevices.class).devices().get(0).device().blockDevicePath();
        Vm.sh(
                        60,
                        "head -c 1M /dev/urandom > /tmp/starter.data; dd if=/tmp/starter.data of=" + b
                                + " bs=1M oflag=direct status=none")
                .requireSuccess();
        first.close();
        assertTrue(Vm.deviceExists(id), "device " + id + " is left for the next start");
        // The next start of the application (a new version, a restart) takes it over instead of adding a new one.
        ConfigurableApplicationContext second = start(properties);
        try {
            UbdDevice again = second.getBean(UbdDevices.class).devices().get(0).device();
            assertEquals(id, again.id());
            Vm.sh(60, "cmp -n 1048576 /tmp/starter.data " + again.blockDevicePath())
                    .requireSuccess();
        } finally {
            // Handed over once more at this shutdown: delete it here, as an operator would.
            second.close();
            try (UbdServer last = UbdServer.create()) {
                last.recover(id, new MemoryBackend(16 << 20))
                        .block(WAIT)
                        .close()
                        .block(WAIT);
            }
        }
        assertFalse(Vm.deviceExists(id), "device " + id + " deleted");
    }

    private static String names(MeterRegistry registry) {
        return registry.getMeters().stream()
                .map(m -> m.getId().getName())
                .distinct()
                .toList()
                .toString();
    }
}

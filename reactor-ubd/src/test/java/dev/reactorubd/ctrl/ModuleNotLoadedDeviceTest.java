package dev.reactorubd.ctrl;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdModuleNotLoadedException;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Vm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** With ublk_drv unloaded, the control plane says to load it. The module is loaded again afterwards. */
@DeviceTest
class ModuleNotLoadedDeviceTest {

    @Test
    void controlPlaneSaysModuleNotLoaded() {
        try (UbdControl c = UbdControl.open()) {
            // Remove what other tests may have left, or rmmod would be refused.
            c.listDevices().concatMap(d -> c.removeDevice(d.id())).then().block(Duration.ofSeconds(60));
        }
        Vm.run(60, "rmmod", "ublk_drv").requireSuccess();
        try {
            assertFalse(Files.exists(UbdControl.CONTROL_PATH));
            UbdModuleNotLoadedException e = assertThrows(UbdModuleNotLoadedException.class, UbdControl::open);
            assertTrue(e.getMessage().contains("modprobe ublk_drv"), e.getMessage());
        } finally {
            Vm.run(60, "insmod", Vm.modules().resolve("ublk_drv.ko").toString()).requireSuccess();
        }
        assertTrue(Files.exists(Path.of("/dev/ublk-control")));
        try (UbdControl c = UbdControl.open()) {
            assertFalse(c.features().block(Duration.ofSeconds(30)).isEmpty());
        }
    }
}

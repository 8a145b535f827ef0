package dev.reactorubd.samples;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;

/** A 64 MiB RAM disk at /dev/ublkbN until Enter is pressed (as root, with ublk_drv loaded). */
public final class Quickstart {
    private Quickstart() {
    }

    /**
     * Serves the disk until Enter is pressed, then deletes it.
     *
     * @param args not used
     * @throws Exception when the kernel refuses (not root, no ublk_drv) or stdin fails
     */
    public static void main(String[] args) throws Exception {
        long size = 64L << 20;
        try (UbdServer server = UbdServer.create()) {                     // or UbdServer.create(yourIoUringLoops)
            UbdDevice device = server.serve(
                    DeviceSpec.builder().capacityBytes(size).queues(2).build(),
                    new MemoryBackend(size))                              // any BlockBackend
                .block();
            System.out.println(device.blockDevicePath() + " is live: mkfs, mount, fio... Enter stops it");
            System.in.read();
            device.close().block();                                       // stop, drain in-flight IO, delete
        }
    }
}

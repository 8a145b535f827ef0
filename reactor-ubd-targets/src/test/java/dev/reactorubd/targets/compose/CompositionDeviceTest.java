package dev.reactorubd.targets.compose;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testing.DeviceServer;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import reactor.core.Disposable;

/** Composed backends against the real ublk driver: a mirror that loses and regains a replica, stripe, concat. */
@DeviceTest
class CompositionDeviceTest {
    private static final Duration WAIT = Devices.WAIT;
    private static final long MIB = 1 << 20;

    @RegisterExtension
    static final DeviceServer SERVER = new DeviceServer();

    private static UbdDevice serve(BlockBackend backend) {
        return Devices.serve(
                SERVER.get(),
                DeviceSpec.builder()
                        .capacityBytes(backend.size())
                        .queues(2)
                        .depth(64)
                        .build(),
                backend);
    }

    @Test
    void aMirrorKeepsServingWhenAReplicaFillsUpAndResyncsItWhenItComesBack() {
        // Replica 0 on a roomy tmpfs; replica 1 on a tmpfs of 8 MiB: its sparse 48 MiB file fills up mid-run.
        Vm.sh(
                        60,
                        "set -e; mkdir -p /run/mirror-a /run/mirror-b; mount -t tmpfs -o size=128M a /run/mirror-a;"
                                + " mount -t tmpfs -o size=8M b /run/mirror-b")
                .requireSuccess();
        Path a = Path.of("/run/mirror-a/replica.img");
        Path b = Path.of("/run/mirror-b/replica.img");
        FileBackend fa = FileBackend.open(a, FileBackend.Options.defaults().createSize(48 * MIB));
        FileBackend fb = FileBackend.open(b, FileBackend.Options.defaults().createSize(48 * MIB));
        MirrorBackend mirror = Backends.mirror(fa, fb);
        List<HealthEvent> events = new CopyOnWriteArrayList<>();
        Disposable watch = mirror.health().subscribe(events::add);
        try {
            UbdDevice dev = serve(mirror);
            try {
                Devices.fioVerify(dev, "mirror-degraded", 40 * MIB);
                assertEquals(ReplicaState.FAILED, mirror.state(1), "the full replica failed: " + events);
                assertEquals(ReplicaState.IN_SYNC, mirror.state(0));
                assertTrue(
                        events.stream().anyMatch(e -> e.replica() == 1 && e.to() == ReplicaState.FAILED),
                        "the failure was reported: " + events);
                assertTrue(mirror.dirtyRegions(1) > 0, "regions written without replica 1 are tracked");
                assertEquals(0, dev.queue(0).failedCount() + dev.queue(1).failedCount(), "no request failed");

                // Room again: bring the replica back while fio keeps writing and verifying.
                Vm.sh(30, "mount -o remount,size=128M /run/mirror-b").requireSuccess();
                Process load = new ProcessBuilder(
                                "sh",
                                "-c",
                                "fio --name=during-resync --filename="
                                        + dev.blockDevicePath()
                                        + " --rw=randwrite --bs=16k --iodepth=16 --ioengine=io_uring"
                                        + " --direct=1 --size=16M --offset=8M --verify=crc32c --do_verify=1 --verify_fatal=1")
                        .redirectErrorStream(true)
                        .start();
                mirror.reinstate(1).block(Duration.ofMinutes(5));
                assertTrue(load.waitFor(300, TimeUnit.SECONDS), "fio during the resync ended");
                String out = new String(load.getInputStream().readAllBytes());
                assertEquals(0, load.exitValue(), out);
                assertEquals(List.of(ReplicaState.IN_SYNC, ReplicaState.IN_SYNC), mirror.states());
                assertTrue(
                        events.stream().anyMatch(e -> e.replica() == 1 && e.to() == ReplicaState.IN_SYNC),
                        "the resync was reported: " + events);
                assertTrue(mirror.copiedRegions() > 0, "the resync copied regions");
                System.out.println("mirror: " + events.size() + " health events, " + mirror.copiedRegions()
                        + " regions of " + mirror.regionBytes() + " bytes resynced");
            } finally {
                Devices.closeAndCheckGone(dev);
            }
            Vm.Result same = Vm.sh(120, "cmp " + a + " " + b + " && echo identical");
            assertTrue(same.output().contains("identical"), "both replicas hold the same bytes: " + same.output());
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(e);
        } finally {
            watch.dispose();
            mirror.close().block(WAIT);
            Vm.sh(30, "umount /run/mirror-a /run/mirror-b; true");
        }
    }

    @Test
    void aStripeOverThreeMemoryBackendsVerifies() {
        MemoryBackend[] parts = {new MemoryBackend(16 * MIB), new MemoryBackend(16 * MIB), new MemoryBackend(16 * MIB)};
        BlockBackend stripe = Backends.stripe(64 * 1024, parts);
        assertEquals(48 * MIB, stripe.size());
        UbdDevice dev = serve(stripe);
        try {
            Devices.fioVerify(dev, "stripe", 48 * MIB);
            for (MemoryBackend p : parts) {
                assertTrue(p.allocatedBytes() > 8 * MIB, "every part holds a share: " + p.allocatedBytes());
            }
        } finally {
            Devices.closeAndCheckGone(dev);
        }
    }

    @Test
    void aConcatOfTwoFilesVerifiesAndEachFileHoldsItsPart() {
        Vm.sh(30, "mkdir -p /run/concat").requireSuccess();
        Path p1 = Path.of("/run/concat/one.img");
        Path p2 = Path.of("/run/concat/two.img");
        FileBackend f1 = FileBackend.open(p1, FileBackend.Options.defaults().createSize(20 * MIB));
        FileBackend f2 = FileBackend.open(p2, FileBackend.Options.defaults().createSize(28 * MIB));
        BlockBackend concat = Backends.concat(f1, f2);
        try {
            assertEquals(48 * MIB, concat.size());
            UbdDevice dev = serve(concat);
            try {
                Devices.fioVerify(dev, "concat", 48 * MIB);
                String d = dev.blockDevicePath();
                Vm.Result r = Vm.sh(
                        120,
                        "cmp -n " + 20 * MIB + " " + d + " " + p1 + " && cmp -i " + 20 * MIB + ":0 " + d + " " + p2
                                + " && echo parts-match");
                assertTrue(r.output().contains("parts-match"), "the device is file one then file two: " + r.output());
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        } finally {
            concat.close().block(WAIT);
            Vm.sh(30, "rm -rf /run/concat");
        }
    }
}

package dev.reactorubd.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.UbdUnsupportedException;
import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.Vm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Live upgrade with QUIESCE_DEV (Linux 6.16+): a device under fio with crc32c verify is quiesced and released by its
 * server, then taken over: by {@link UbdServer#recover} in this JVM, by {@code ubd recover --handover} in a new
 * process, and back here when that process gets SIGTERM and hands it over; fio sees no error and its verify pass
 * finds every block intact. A device added without the feature is
 * refused with a typed error and keeps serving.
 */
@DeviceTest
class QuiesceDeviceTest {
    private static final long MIB = 1 << 20;
    private final List<Process> processes = new ArrayList<>();
    private UbdServer server;

    @BeforeEach
    void needsQuiesce() {
        Vm.assumeFeature(UblkFeature.QUIESCE);
        server = Devices.startServer();
    }

    @AfterEach
    void cleanUp() {
        processes.forEach(Process::destroyForcibly);
        if (server != null) {
            server.close();
        }
        Vm.removeEveryDevice();
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    /** Quiesces {@code dev} and checks that the kernel holds it for a new server, and this one let go. */
    private void handOver(UbdDevice dev) {
        long t0 = System.nanoTime();
        dev.quiesce().block(Devices.WAIT);
        System.out.println("quiesce: device " + dev.id() + " handed over in "
                + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms");
        assertEquals(
                UblkDevState.QUIESCED,
                server.control().deviceInfo(dev.id()).block(Devices.WAIT).state());
        assertTrue(dev.isDisposed(), "the handle is let go");
        assertFalse(server.devices().contains(dev), "no longer this server's device");
        dev.close().block(Devices.WAIT); // does nothing now: the device is the next server's
        assertTrue(Vm.deviceExists(dev.id()), "close() after the hand-over did not delete the device");
    }

    @Test
    void quiescedUnderFioThenTakenOverHereAndByANewProcessLosesNothing() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "ubd-quiesce");
        Path img = dir.resolve("store.img");
        Vm.run(30, "truncate", "-s", "64M", img.toString()).requireSuccess();
        FileBackend store = FileBackend.open(img);
        try {
            DeviceSpec spec = DeviceSpec.builder()
                    .capacityBytes(64 * MIB)
                    .queues(2)
                    .depth(32)
                    .feature(UblkFeature.USER_RECOVERY)
                    .feature(UblkFeature.QUIESCE)
                    .build();
            UbdDevice first = Devices.serve(server, spec, store);
            int id = first.id();
            Path fioOut = dir.resolve("fio.out");
            Process fio = new ProcessBuilder(
                            "fio",
                            "--name=quiesce",
                            "--filename=/dev/ublkb" + id,
                            "--rw=randwrite",
                            "--bsrange=4k-64k",
                            "--iodepth=32",
                            "--ioengine=io_uring",
                            "--direct=1",
                            "--verify=crc32c",
                            "--do_verify=1",
                            "--verify_fatal=1",
                            "--group_reporting",
                            "--numjobs=2",
                            "--size=24M",
                            "--offset_increment=24M",
                            "--cpus_allowed=0,1",
                            "--cpus_allowed_policy=split")
                    .redirectErrorStream(true)
                    .redirectOutput(fioOut.toFile())
                    .start();
            processes.add(fio);

            Devices.awaitProgress(id, fio, 300);
            handOver(first);
            UbdDevice second = server.recover(id, store).block(Devices.WAIT);
            assertEquals(id, second.id());
            System.out.println("quiesce: taken over in this JVM at " + Devices.writesCompleted(id) + " writes");

            Devices.awaitProgress(id, fio, 300);
            handOver(second);
            Path log = dir.resolve("recover.log");
            Process next = UbdProcesses.start(
                            processes,
                            log,
                            "recover",
                            "--id",
                            String.valueOf(id),
                            "--target",
                            "file",
                            "--file",
                            img.toString(),
                            "--handover")
                    .process();
            System.out.println(
                    "quiesce: taken over by process " + next.pid() + " at " + Devices.writesCompleted(id) + " writes");

            Devices.awaitProgress(id, fio, 200);
            next.destroy(); // SIGTERM: with --handover the process quiesces the device and leaves it
            assertTrue(next.waitFor(120, TimeUnit.SECONDS), "the other server handed over and exited");
            String nextLog = Files.readString(log);
            assertEquals(0, next.exitValue(), nextLog);
            assertTrue(nextLog.contains("handed over /dev/ublkb" + id), nextLog);
            assertEquals(
                    UblkDevState.QUIESCED,
                    server.control().deviceInfo(id).block(Devices.WAIT).state());
            UbdDevice last = server.recover(id, store).block(Devices.WAIT);
            System.out.println(
                    "quiesce: taken back from `ubd recover --handover` at " + Devices.writesCompleted(id) + " writes");

            assertTrue(fio.waitFor(600, TimeUnit.SECONDS), "fio finished");
            String out = Files.readString(fioOut, StandardCharsets.UTF_8);
            assertEquals(0, fio.exitValue(), out);
            assertTrue(out.contains("err= 0"), out);
            assertFalse(out.contains("verify:") && out.contains("bad"), out);
            out.lines().filter(l -> l.contains("IOPS=")).forEach(l -> System.out.println("fio quiesce:" + l));
            Devices.closeAndCheckGone(last);
        } finally {
            store.close().block(Devices.WAIT);
            Vm.run(30, "rm", "-rf", dir.toString());
        }
    }

    @Test
    void aDeviceWithoutQuiesceIsRefusedWithATypedErrorAndKeepsServing() {
        MemoryBackend memory = new MemoryBackend(16 * MIB);
        for (DeviceSpec spec : List.of(
                DeviceSpec.builder().capacityBytes(16 * MIB).build(),
                DeviceSpec.builder()
                        .capacityBytes(16 * MIB)
                        .feature(UblkFeature.USER_RECOVERY)
                        .build())) {
            UbdDevice dev = Devices.serve(server, spec, memory);
            try {
                UbdUnsupportedException e = assertThrows(
                        UbdUnsupportedException.class, () -> dev.quiesce().block(Devices.WAIT));
                assertTrue(
                        e.getMessage().contains("QUIESCE") && e.getMessage().contains("still served"), e.getMessage());
                assertThrows(
                        UbdUnsupportedException.class,
                        () -> server.control()
                                .quiesceDevice(dev.id(), Devices.WAIT)
                                .block(Devices.WAIT));
                assertEquals(
                        UblkDevState.LIVE,
                        server.control()
                                .deviceInfo(dev.id())
                                .block(Devices.WAIT)
                                .state());
                assertFalse(dev.isDisposed());
                Vm.sh(
                                60,
                                "dd if=/dev/urandom of=/tmp/q bs=4k count=16 status=none && dd if=/tmp/q of="
                                        + dev.blockDevicePath() + " bs=4k seek=10 oflag=direct status=none && dd if="
                                        + dev.blockDevicePath()
                                        + " of=/tmp/q.back bs=4k skip=10 count=16 iflag=direct status=none"
                                        + " && cmp /tmp/q /tmp/q.back")
                        .requireSuccess();
            } finally {
                Devices.closeAndCheckGone(dev);
            }
        }
        memory.close().block(Devices.WAIT);
    }
}

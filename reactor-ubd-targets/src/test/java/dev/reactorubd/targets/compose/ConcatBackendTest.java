package dev.reactorubd.targets.compose;

import static dev.reactorubd.targets.compose.TestData.KIB;
import static dev.reactorubd.targets.compose.TestData.MIB;
import static dev.reactorubd.targets.compose.TestData.WAIT;
import static dev.reactorubd.targets.compose.TestData.buf;
import static dev.reactorubd.targets.compose.TestData.bytes;
import static dev.reactorubd.targets.compose.TestData.direct;
import static dev.reactorubd.targets.compose.TestData.errno;
import static dev.reactorubd.targets.compose.TestData.read;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.targets.MemoryBackend;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testkit.VirtualDevice;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.test.StepVerifier;

/** Parts end to end, through the test kit, with the parts checked directly. */
class ConcatBackendTest {
    @AfterEach
    void noBlockingCallOnAnEventLoop() {
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    @Test
    void theLayoutSplitsAtPartBoundaries() {
        Layout concat = new Layout.Concat(new long[] {MIB, 512 * KIB, 2 * MIB});
        assertEquals(
                List.of(new Layout.Piece(0, MIB - 4 * KIB, 0, 4 * KIB), new Layout.Piece(1, 0, 4 * KIB, 4 * KIB)),
                concat.split(MIB - 4 * KIB, 8 * KIB));
        assertEquals(List.of(new Layout.Piece(1, 0, 0, 512 * KIB)), concat.split(MIB, 512 * KIB));
        assertEquals(
                List.of(
                        new Layout.Piece(0, MIB - 512, 0, 512),
                        new Layout.Piece(1, 0, 512, 512 * KIB),
                        new Layout.Piece(2, 0, 512 + 512 * KIB, 512)),
                concat.split(MIB - 512, 512 * KIB + 1024));
    }

    @Test
    void dataAtBoundariesLandsInTheRightPartAtTheRightOffset() {
        MemoryBackend[] parts = {new MemoryBackend(MIB), new MemoryBackend(512 * KIB), new MemoryBackend(2 * MIB)};
        ConcatBackend concat = Backends.concat(parts);
        assertEquals(3 * MIB + 512 * KIB, concat.size());
        try (VirtualDevice dev = VirtualDevice.serve(concat, 2, 16)) {
            byte[] across = bytes(1, 8 * KIB);
            StepVerifier.create(dev.write(0, MIB - 4 * KIB, buf(across))).verifyComplete();
            assertArrayEquals(Arrays.copyOfRange(across, 0, 4 * KIB), direct(parts[0], MIB - 4 * KIB, 4 * KIB));
            assertArrayEquals(Arrays.copyOfRange(across, 4 * KIB, 8 * KIB), direct(parts[1], 0, 4 * KIB));
            assertArrayEquals(across, read(dev, 1, MIB - 4 * KIB, 8 * KIB));

            // Over the whole middle part, into both neighbours.
            byte[] wide = bytes(2, 512 * KIB + 16 * KIB);
            long start = MIB - 8 * KIB;
            StepVerifier.create(dev.write(1, start, buf(wide))).verifyComplete();
            assertArrayEquals(Arrays.copyOfRange(wide, 0, 8 * KIB), direct(parts[0], MIB - 8 * KIB, 8 * KIB));
            assertArrayEquals(Arrays.copyOfRange(wide, 8 * KIB, 8 * KIB + 512 * KIB), direct(parts[1], 0, 512 * KIB));
            assertArrayEquals(Arrays.copyOfRange(wide, 8 * KIB + 512 * KIB, wide.length), direct(parts[2], 0, 8 * KIB));
            assertArrayEquals(wide, read(dev, 0, start, wide.length), "a split read reassembles");

            // The last bytes of the device are the last bytes of the last part.
            byte[] tail = bytes(3, 4 * KIB);
            dev.write(0, concat.size() - 4 * KIB, buf(tail)).block(WAIT);
            assertArrayEquals(tail, direct(parts[2], 2 * MIB - 4 * KIB, 4 * KIB));
            StepVerifier.create(dev.write(0, concat.size() - 4 * KIB, buf(bytes(4, 8 * KIB))))
                    .expectErrorMatches(errno(Errno.EINVAL))
                    .verify(WAIT);

            StepVerifier.create(dev.discard(1, MIB - 4 * KIB, 8 * KIB)).verifyComplete();
            assertArrayEquals(new byte[4 * KIB], direct(parts[0], MIB - 4 * KIB, 4 * KIB));
            assertArrayEquals(new byte[4 * KIB], direct(parts[1], 0, 4 * KIB));
            assertArrayEquals(new byte[8 * KIB], read(dev, 0, MIB - 4 * KIB, 8 * KIB));
        }
    }

    @Test
    void aPartsErrorFailsTheRequestWithItsErrno() {
        FaultyBackend second = Backends.from(new MemoryBackend(MIB)).faults();
        try (VirtualDevice dev = VirtualDevice.serve(Backends.concat(new MemoryBackend(MIB), second), 2, 8)) {
            second.failWrites(Errno.EROFS);
            StepVerifier.create(dev.write(0, MIB - 4 * KIB, buf(bytes(1, 8 * KIB))))
                    .expectErrorMatches(errno(Errno.EROFS))
                    .verify(WAIT);
            StepVerifier.create(dev.write(1, 0, buf(bytes(1, 8 * KIB)))).verifyComplete();
        }
    }

    @Test
    void everyPartMustKnowItsSize() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Backends.concat(new MemoryBackend(MIB), TestData.unknownSize()));
        assertTrue(e.getMessage().contains("part 1") && e.getMessage().contains("unknown size"), e.getMessage());
    }
}

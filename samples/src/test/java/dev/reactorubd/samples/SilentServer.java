package dev.reactorubd.samples;

import dev.reactorubd.ctrl.DeviceSpec;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdDevice;
import dev.reactorubd.server.UbdServer;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import reactor.core.publisher.Mono;

/**
 * A server for device tests that holds every WRITE it is given and never answers it (reads are answered with zeros,
 * so that the kernel's partition scan at start completes): {@code java -cp ... SilentServer DEPTH} serves a 16 MiB,
 * one-queue device of DEPTH tags, prints "serving /dev/ublkbN" and runs until killed. The library's own request
 * timeout is set to an hour, so nothing but the server's death ends the held writes.
 */
public final class SilentServer {
    private SilentServer() {}

    /**
     * Serves the device until the process is killed.
     *
     * @param args the queue depth
     * @throws InterruptedException never in practice: it sleeps until killed
     */
    public static void main(String[] args) throws InterruptedException {
        int depth = Integer.parseInt(args[0]);
        long size = 16L << 20;
        UbdServer server =
                UbdServer.builder().requestTimeout(Duration.ofHours(1)).build();
        BlockBackend silent = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return Mono.fromSupplier(() -> allocator.buffer(length).writeZero(length));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.never();
            }

            @Override
            public long size() {
                return size;
            }
        };
        UbdDevice dev = server.serve(
                        DeviceSpec.builder()
                                .capacityBytes(size)
                                .queues(1)
                                .depth(depth)
                                .build(),
                        silent)
                .block(Duration.ofMinutes(3));
        System.out.println("serving " + dev.blockDevicePath());
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}

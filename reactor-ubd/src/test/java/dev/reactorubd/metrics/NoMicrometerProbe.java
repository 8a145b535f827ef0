package dev.reactorubd.metrics;

import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.UbdServer;
import dev.reactorubd.testkit.VirtualDevice;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.concurrent.Callable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/** Run by {@link NoMicrometerTest} in a class loader without Micrometer: serves requests, returns how many. */
public final class NoMicrometerProbe implements Callable<Long> {
    static final long REQUESTS = 64;

    @Override
    public Long call() {
        // The server's builder and the kit's overloads that take a registry are linked, but not called.
        UbdServer.builder().metrics(UbdMetrics.NONE);
        BlockBackend backend = new BlockBackend() {
            @Override
            public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
                return Mono.just(allocator.directBuffer(length).writeZero(length));
            }

            @Override
            public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
                return Mono.empty();
            }
        };
        ByteBuf data = Unpooled.directBuffer(4096).writeZero(4096);
        try (VirtualDevice dev = VirtualDevice.serve(backend, 1, 16)) {
            Flux.range(0, (int) REQUESTS / 2)
                    .concatMap(i -> dev.write(0, i * 4096L, data.duplicate())
                            .then(dev.read(0, i * 4096L, 4096).doOnNext(ByteBuf::release)))
                    .then()
                    .block(Duration.ofSeconds(10));
            return dev.queue(0).completedCount();
        } finally {
            data.release();
        }
    }
}

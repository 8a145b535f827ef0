package dev.reactorubd.server;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.IoRequest;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.uring.Errno;
import io.netty.buffer.ByteBuf;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

/**
 * Wires a queue's requests to a {@link BlockBackend}: at most depth requests in the backend at once, each answered
 * from its Mono. The same code serves kernel queues and the test kit's virtual device.
 */
public final class BackendBridge {
    private BackendBridge() {}

    /** Subscribes to {@code queue}'s requests and serves them from {@code backend} until the queue ends. */
    public static Disposable attach(UbdQueue queue, BlockBackend backend) {
        return queue.requests()
                .flatMap(r -> serve(backend, r), queue.depth(), 1)
                .subscribe(null, e -> { /* the queue's own failure; the device reports it */ });
    }

    /** Serves one request; the returned Mono never errors. */
    public static Mono<Void> serve(BlockBackend backend, IoRequest r) {
        return Mono.defer(() -> call(backend, r))
                .onErrorResume(e -> {
                    r.fail(e);
                    return Mono.empty();
                });
    }

    private static Mono<Void> call(BlockBackend backend, IoRequest r) {
        return switch (r.op()) {
            case READ -> backend.read(r.offset(), r.length(), r.queue().allocator())
                    .switchIfEmpty(Mono.error(() -> new UbdIoException(Errno.EIO,
                            "the backend's read of " + r + " completed without data")))
                    .doOnNext(r::complete)
                    .doOnDiscard(ByteBuf.class, ByteBuf::release)
                    .then();
            case WRITE -> backend.write(r.offset(), r.data(), r.fua()).then(Mono.fromRunnable(r::complete));
            case FLUSH -> backend.flush().then(Mono.fromRunnable(r::complete));
            case DISCARD -> backend.discard(r.offset(), r.length()).then(Mono.fromRunnable(r::complete));
            case WRITE_ZEROES -> backend.writeZeroes(r.offset(), r.length(), r.noUnmap())
                    .then(Mono.fromRunnable(r::complete));
            default -> Mono.error(new UbdIoException(Errno.EOPNOTSUPP, r.op() + " is not served"));
        };
    }
}

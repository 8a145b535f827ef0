package dev.reactorubd.targets.nbd;

import io.netty.buffer.ByteBuf;
import reactor.core.publisher.MonoSink;

/**
 * Answers a Mono from a command: its READ data, its completion, or its error. A cancelled Mono gives its commands
 * up: the connection drops them (see {@link NbdConnection#abandon()}).
 */
final class MonoCompletion implements NbdCommand.Completion {
    private final MonoSink<?> sink;
    private volatile boolean cancelled;

    MonoCompletion(MonoSink<?> sink, NbdConnection c) {
        this.sink = sink;
        sink.onCancel(() -> {
            cancelled = true;
            c.abandon();
        });
    }

    @Override
    public boolean isCancelled() {
        return cancelled;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void succeeded(ByteBuf readData) {
        if (readData == null) {
            sink.success();
        } else if (cancelled) {
            readData.release();
        } else {
            ((MonoSink<ByteBuf>) sink).success(readData);
        }
    }

    @Override
    public void failed(Throwable error) {
        sink.error(error);
    }
}

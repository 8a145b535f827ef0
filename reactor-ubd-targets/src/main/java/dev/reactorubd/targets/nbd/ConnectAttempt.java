package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.describe;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import java.net.SocketAddress;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;

/**
 * One attempt of an {@link NbdConnection} to reach its export: connect, then the handshake ({@link Handshake}), both
 * within {@link NbdOptions#connectTimeout()}. It reports exactly once, on the loop: the channel and the export's info,
 * or an {@link NbdException} (the channel is closed then). {@link #cancel} reports a failure now if it has not
 * reported yet. Used on the loop only.
 */
final class ConnectAttempt implements BiConsumer<ExportInfo, Throwable> {
    /** The single report of an attempt. */
    interface Outcome {
        /** The handshake is done: {@code channel} is the caller's, to add its handler after the handshake's (which then leaves). */
        void connected(ConnectAttempt attempt, Channel channel, ExportInfo info);

        void failed(ConnectAttempt attempt, NbdException error);
    }

    private final NbdUri uri;
    private final NbdOptions options;
    private final EventLoop loop;
    private final Class<? extends Channel> channelClass;
    private final SocketAddress address;
    private final NbdTls tls;
    private final Outcome outcome;
    private Channel channel;
    private ScheduledFuture<?> timer;
    private boolean reported;

    /** @param tls how the channel does TLS after NBD_OPT_STARTTLS, or null for plain text */
    ConnectAttempt(
            NbdUri uri,
            NbdOptions options,
            EventLoop loop,
            Class<? extends Channel> channelClass,
            SocketAddress address,
            NbdTls tls,
            Outcome outcome) {
        this.uri = uri;
        this.options = options;
        this.loop = loop;
        this.channelClass = channelClass;
        this.address = address;
        this.tls = tls;
        this.outcome = outcome;
    }

    /** Starts connecting; called once. */
    void start() {
        Duration timeout = options.connectTimeout();
        // Netty's pooled allocator, as the queues use: thread-local caches, and locks Netty declares to
        // BlockHound (4.2's default adaptive allocator may park a loop thread while it grows).
        Bootstrap b = new Bootstrap()
                .group(loop)
                .channel(channelClass)
                .option(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                .handler(new Handshake(uri.toString(), uri.exportName(), options.maxExportSize(), tls, this))
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) Math.min(timeout.toMillis(), Integer.MAX_VALUE));
        if (!uri.isUnix()) {
            b.option(ChannelOption.TCP_NODELAY, true).option(ChannelOption.SO_KEEPALIVE, true);
        }
        timer = loop.schedule(
                () -> cancel(new NbdException("connecting to " + uri + " timed out after " + timeout
                        + " (connect and handshake); is the server up and answering?")),
                timeout.toNanos(),
                TimeUnit.NANOSECONDS);
        try {
            var future = b.connect(address);
            channel = future.channel();
            future.addListener(f -> {
                if (!f.isSuccess()) {
                    cancel(new NbdException(
                            "cannot connect to " + uri + ": " + describe(f.cause())
                                    + "; is the server running and listening there?",
                            f.cause()));
                }
            });
        } catch (RuntimeException e) {
            cancel(new NbdException("cannot connect to " + uri + ": " + describe(e), e));
        }
    }

    /** Fails the attempt with {@code e} and closes its channel, unless it has reported already. */
    void cancel(NbdException e) {
        if (reported) {
            return;
        }
        reported = true;
        timer.cancel(false);
        if (channel != null) {
            channel.close();
        }
        outcome.failed(this, e);
    }

    /** The handshake's outcome. */
    @Override
    public void accept(ExportInfo exportInfo, Throwable error) {
        if (reported) {
            return;
        }
        if (error != null) {
            cancel(error instanceof NbdException n ? n : new NbdException(describe(error), error));
            return;
        }
        reported = true;
        timer.cancel(false);
        outcome.connected(this, channel, exportInfo);
    }
}

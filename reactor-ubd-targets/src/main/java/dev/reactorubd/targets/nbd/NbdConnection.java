package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.uring.LoopIo;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioDomainSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.unix.UnixChannel;
import io.netty.channel.uring.IoUringDomainSocketChannel;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringSocketChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.collection.LongObjectHashMap;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

/**
 * One logical connection to an export, on one event loop: it outlives the channels under it. Requests are sent as
 * they come and matched to replies by cookie; when the channel is lost, the requests in flight wait for a reconnect or
 * fail, as {@link NbdOptions} says. Every field is touched only on {@link #loop}; {@link #submit} and {@link #close}
 * may be called from any thread.
 */
final class NbdConnection {
    private static final Logger log = LoggerFactory.getLogger(NbdConnection.class);

    private enum State {
        NEW,
        CONNECTING,
        READY,
        DOWN,
        CLOSED
    }

    private final String label;
    private final NbdUri uri;
    private final NbdOptions options;
    private final EventLoop loop;
    private final Class<? extends Channel> channelClass;
    private final SocketAddress address;
    private final ArrayDeque<NbdCommand> waiting = new ArrayDeque<>();
    private final Sinks.Empty<Void> closed = Sinks.empty();
    private State state = State.NEW;
    private Session session;
    private volatile boolean connected;
    private long expectedSize;
    private ExportInfo info;
    private long nextCookie = 1;
    private int attempt;
    private int attemptsThisCycle;
    private long lastAttemptEnd = System.nanoTime() - TimeUnit.DAYS.toNanos(1);
    private Throwable lastError;
    private ScheduledFuture<?> reconnectTimer;
    private Attempt attemptUnderWay;
    /**
     * The loop registration sessions write through ({@link RingWriter}), or null: they write through their channel.
     * Closed with the connection.
     */
    private final LoopIo ring;
    /** The writer of the latest session, which closes {@link #ring} once its last write is back. */
    private RingWriter lastWriter;

    private final UnflushedWrites unflushed;
    /** TLS for every channel of this connection, or null. */
    private final NbdTls tls;
    /** The number of the latest write (not FUA) acknowledged on this connection ({@link UnflushedWrites}), or 0. */
    private long latestAck;

    /**
     * @param expectedSize the export's size as first seen (checked on every handshake), or -1 to take the first
     *                     handshake's
     */
    NbdConnection(
            String label,
            NbdUri uri,
            NbdOptions options,
            EventLoop loop,
            InetSocketAddress resolved,
            long expectedSize,
            UnflushedWrites unflushed,
            NbdTls tls) {
        this(label, uri, options, loop, resolved, expectedSize, null, unflushed, tls);
    }

    /**
     * @param io a registration with {@code loop}, an io_uring loop, that sessions write through instead of their
     *           channel, so that a WRITE can send a ublk request's registered pages ({@link #canSendRegistered()});
     *           closed with this connection. Null: sessions write through their channel.
     * @param unflushed shared by the connections of one export: which acknowledged writes a FLUSH made durable, and
     *                  whether a connection was lost with some that were not (the next FLUSH then fails)
     * @param tls how every channel does TLS after NBD_OPT_STARTTLS (reconnects too), or null for plain text; with TLS
     *            {@code io} must be null: every byte goes through the channel's SslHandler
     */
    NbdConnection(
            String label,
            NbdUri uri,
            NbdOptions options,
            EventLoop loop,
            InetSocketAddress resolved,
            long expectedSize,
            LoopIo io,
            UnflushedWrites unflushed,
            NbdTls tls) {
        if (tls != null && io != null) {
            // A RingWriter writes to the socket's descriptor, around the pipeline: it would send plain text.
            throw new IllegalArgumentException(
                    "a TLS connection writes through its channel's SslHandler, never a" + " ring");
        }
        if (uri.tls() && tls == null) {
            throw new IllegalArgumentException(uri + " asks for TLS: a connection to it needs its credentials");
        }
        this.tls = tls;
        this.ring = io;
        this.unflushed = unflushed;
        this.label = label;
        this.uri = uri;
        this.options = options;
        this.loop = loop;
        this.channelClass = channelClass(loop, uri.isUnix());
        if (channelClass == null) {
            throw new IllegalArgumentException(loop + " is neither an io_uring nor a NIO event loop");
        }
        this.address = uri.isUnix()
                ? (IoUringDomainSocketChannel.class.equals(channelClass)
                        ? new DomainSocketAddress(uri.socketPath())
                        : UnixDomainSocketAddress.of(uri.socketPath()))
                : resolved;
        this.expectedSize = expectedSize;
    }

    /** The channel type for sockets on {@code loop}, or null when it is neither an io_uring nor a NIO loop. */
    static Class<? extends Channel> channelClass(EventLoop loop, boolean unix) {
        if (loop instanceof IoEventLoopGroup g) {
            if (g.isIoType(IoUringIoHandler.class)) {
                return unix ? IoUringDomainSocketChannel.class : IoUringSocketChannel.class;
            }
            if (g.isIoType(NioIoHandler.class)) {
                return unix ? NioDomainSocketChannel.class : NioSocketChannel.class;
            }
        }
        return null;
    }

    EventLoop loop() {
        return loop;
    }

    /**
     * Whether WRITE commands may carry a registered buffer ({@link NbdCommand#bufferIndex}) of the loop's ring: its
     * sessions write through io_uring operations of their own.
     */
    boolean canSendRegistered() {
        return ring != null;
    }

    /** Whether a channel is up and past its handshake. */
    boolean isConnected() {
        return connected;
    }

    private void run(Runnable task, Runnable ifRejected) {
        if (loop.inEventLoop()) {
            task.run();
            return;
        }
        try {
            loop.execute(task);
        } catch (RejectedExecutionException e) {
            ifRejected.run();
        }
    }

    // ------------------------------------------------------------------------------------------------ connecting

    /** Connects once (no retry): the export's info, or an {@link NbdException}. After a failure it is closed. */
    Mono<ExportInfo> open() {
        return Mono.create(sink -> run(
                () -> {
                    if (state != State.NEW) {
                        sink.error(new IllegalStateException(label + " was already opened"));
                        return;
                    }
                    state = State.CONNECTING;
                    connectOnce((s, error) -> {
                        lastAttemptEnd = System.nanoTime();
                        if (state == State.CLOSED) {
                            if (s != null) {
                                s.dispose("closed while connecting");
                            }
                            sink.error(new NbdException(label + " was closed while connecting"));
                            return;
                        }
                        if (error != null) {
                            state = State.CLOSED;
                            failAll(waiting, error);
                            closeIo();
                            closed.tryEmitEmpty();
                            sink.error(error);
                            return;
                        }
                        if (expectedSize >= 0 && s.info.size() != expectedSize) {
                            String msg = label + " has " + s.info.size() + " bytes where the first connection saw "
                                    + expectedSize + "; the export changed size";
                            s.dispose(msg);
                            state = State.CLOSED;
                            closeIo();
                            closed.tryEmitEmpty();
                            sink.error(new NbdException(msg));
                            return;
                        }
                        expectedSize = s.info.size();
                        adopt(s);
                        log.info("connected to {} ({})", label, s.info);
                        sink.success(s.info);
                    });
                },
                () -> sink.error(new NbdException("the event loop for " + label + " is shut down"))));
    }

    /** One attempt: connect, then the handshake, within connectTimeout; reports once, on the loop. */
    private void connectOnce(BiConsumer<Session, NbdException> done) {
        Attempt a = new Attempt(done);
        attemptUnderWay = a;
        a.start();
    }

    private final class Attempt implements BiConsumer<ExportInfo, Throwable> {
        private final BiConsumer<Session, NbdException> done;
        private Channel channel;
        private ScheduledFuture<?> timer;
        private boolean reported;

        Attempt(BiConsumer<Session, NbdException> done) {
            this.done = done;
        }

        void start() {
            Duration timeout = options.connectTimeout();
            // Netty's pooled allocator, as the queues use: thread-local caches, and locks Netty declares to
            // BlockHound (4.2's default adaptive allocator may park a loop thread while it grows).
            Bootstrap b = new Bootstrap()
                    .group(loop)
                    .channel(channelClass)
                    .option(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                    .handler(new Handshake(uri.toString(), uri.exportName(), options.maxExportSize(), tls, this))
                    .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int)
                            Math.min(timeout.toMillis(), Integer.MAX_VALUE));
            if (!uri.isUnix()) {
                b.option(ChannelOption.TCP_NODELAY, true).option(ChannelOption.SO_KEEPALIVE, true);
            }
            timer = loop.schedule(
                    () -> fail(new NbdException("connecting to " + uri + " timed out after " + timeout
                            + " (connect and handshake); is the server up and answering?")),
                    timeout.toNanos(),
                    TimeUnit.NANOSECONDS);
            try {
                var future = b.connect(address);
                channel = future.channel();
                future.addListener(f -> {
                    if (!f.isSuccess()) {
                        fail(new NbdException(
                                "cannot connect to " + uri + ": " + describe(f.cause())
                                        + "; is the server running and listening there?",
                                f.cause()));
                    }
                });
            } catch (RuntimeException e) {
                fail(new NbdException("cannot connect to " + uri + ": " + describe(e), e));
            }
        }

        private void fail(NbdException e) {
            if (reported) {
                return;
            }
            reported = true;
            if (attemptUnderWay == this) {
                attemptUnderWay = null;
            }
            timer.cancel(false);
            if (channel != null) {
                channel.close();
            }
            done.accept(null, e);
        }

        /** The handshake's outcome. */
        @Override
        public void accept(ExportInfo exportInfo, Throwable error) {
            if (reported) {
                return;
            }
            if (error != null) {
                fail(error instanceof NbdException n ? n : new NbdException(describe(error), error));
                return;
            }
            reported = true;
            if (attemptUnderWay == this) {
                attemptUnderWay = null;
            }
            timer.cancel(false);
            Session s = new Session(channel, exportInfo);
            channel.pipeline().addLast(s);
            done.accept(s, null);
        }
    }

    private static String describe(Throwable t) {
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }

    private void adopt(Session s) {
        session = s;
        info = s.info;
        state = State.READY;
        connected = true;
        if (!s.channel.isActive()) {
            // Lost before it could be used: handled as any loss.
            sessionLost(s, "the connection closed right after its handshake");
        }
    }

    private boolean retryOn() {
        return options.reconnectAttempts() > 0;
    }

    private void startCycle(int attempts) {
        state = State.CONNECTING;
        attempt = 0;
        attemptsThisCycle = attempts;
        nextAttempt();
    }

    private void nextAttempt() {
        attempt++;
        Duration delay = options.backoffBefore(attempt);
        if (delay.isZero()) {
            tryReconnect();
        } else {
            reconnectTimer = loop.schedule(this::tryReconnect, delay.toNanos(), TimeUnit.NANOSECONDS);
        }
    }

    private void tryReconnect() {
        reconnectTimer = null;
        if (state != State.CONNECTING) {
            return;
        }
        log.debug("reconnecting to {} (attempt {} of {})", label, attempt, attemptsThisCycle);
        connectOnce(this::reconnected);
    }

    private void reconnected(Session s, NbdException error) {
        lastAttemptEnd = System.nanoTime();
        if (state != State.CONNECTING) {
            if (s != null) {
                s.dispose("not needed any more");
            }
            return;
        }
        if (error != null) {
            lastError = error;
            log.info(
                    "reconnect attempt {} of {} to {} failed: {}",
                    attempt,
                    attemptsThisCycle,
                    label,
                    error.getMessage());
            if (attempt < attemptsThisCycle) {
                nextAttempt();
            } else {
                giveUp();
            }
            return;
        }
        if (s.info.size() != expectedSize) {
            String msg = "the export at " + label + " changed size from " + expectedSize + " to " + s.info.size()
                    + " bytes while reconnecting; its requests fail rather than reach other data (serve the export"
                    + " with its old size, or make a new device)";
            log.error(msg);
            s.dispose(msg);
            lastError = new NbdException(msg);
            state = State.DOWN;
            failAll(waiting, new UbdIoException(Errno.EIO, msg));
            return;
        }
        if (s.info.flags() != info.flags()) {
            log.warn("{} now has flags {} (was {})", label, flagNames(s.info.flags()), flagNames(info.flags()));
        }
        int resend = waiting.size();
        adopt(s);
        log.info("reconnected to {} after {} attempt(s); sending {} waiting request(s)", label, attempt, resend);
        NbdCommand c;
        while (state == State.READY && (c = waiting.poll()) != null) {
            if (c.finished) {
                continue;
            }
            if (c.abandoned()) {
                finish(c); // its caller gave it up: it must not reach the export now
                continue;
            }
            send(c);
        }
    }

    private void giveUp() {
        state = State.DOWN;
        String msg = "lost connection to " + label + "; " + attemptsThisCycle + " reconnect"
                + (attemptsThisCycle == 1 ? "" : "s") + " failed (last: "
                + (lastError == null ? "?" : lastError.getMessage()) + ")";
        if (!waiting.isEmpty()) {
            log.warn("{}; {} request(s) fail with EIO; the next request tries again", msg, waiting.size());
        } else {
            // A background attempt with retry off (the loss was logged): requests keep failing fast meanwhile.
            log.debug(msg);
        }
        failAll(waiting, new UbdIoException(Errno.EIO, msg));
    }

    // ------------------------------------------------------------------------------------------------ requests

    /** Sends {@code c} (or queues it, or fails it) on the loop; its completion is called exactly once. */
    void submit(NbdCommand c) {
        run(
                () -> doSubmit(c),
                () -> fail(c, new UbdIoException(Errno.EIO, "the event loop of " + label + " is shut down")));
    }

    private void doSubmit(NbdCommand c) {
        if (c.abandoned()) {
            finish(c);
            return;
        }
        if (state == State.CLOSED) {
            fail(c, new UbdIoException(Errno.EIO, label + " is closed"));
            return;
        }
        long delay = c.deadline - System.nanoTime();
        if (delay <= 0) {
            fail(c, timedOut(c, false));
            return;
        }
        c.timer = loop.schedule(() -> timeout(c), delay, TimeUnit.NANOSECONDS);
        switch (state) {
            case READY -> send(c);
            case NEW -> waiting.add(c);
            case CONNECTING -> {
                if (retryOn()) {
                    waiting.add(c);
                } else {
                    fail(c, failFast());
                }
            }
            case DOWN -> {
                if (retryOn()) {
                    waiting.add(c);
                    log.info(
                            "{} is down; a new request starts a reconnect cycle of {} attempt(s)",
                            label,
                            options.reconnectAttempts());
                    startCycle(options.reconnectAttempts());
                } else {
                    fail(c, failFast());
                    if (System.nanoTime() - lastAttemptEnd
                            >= options.backoffInitial().toNanos()) {
                        startCycle(1);
                    }
                }
            }
            case CLOSED -> fail(c, new UbdIoException(Errno.EIO, label + " is closed"));
        }
    }

    private UbdIoException failFast() {
        return new UbdIoException(
                Errno.EIO,
                "no connection to " + label
                        + " (retry is off: reconnectAttempts=0); a reconnect is tried in the background");
    }

    private UbdIoException timedOut(NbdCommand c, boolean sent) {
        return new UbdIoException(
                Errno.ETIMEDOUT,
                "nbd " + c + " on " + label + " got no reply within " + options.requestTimeout()
                        + (sent ? "" : " (it was waiting for a connection)"));
    }

    private void send(NbdCommand c) {
        if (c.type == CMD_FLUSH) {
            String lost = unflushed.takeLoss();
            if (lost != null) {
                // Writes the server acknowledged were never flushed before a connection was lost: a restarted server
                // may have dropped them. This FLUSH cannot vouch for them, so it fails once, and the file system above
                // learns of it.
                fail(c, new UbdIoException(Errno.EIO, lost));
                return;
            }
            c.covers = unflushed.flushCovers();
        }
        Session s = session;
        Channel ch = s.channel;
        c.cookie = nextCookie++;
        c.session = s;
        c.sends++;
        s.inFlight.put(c.cookie, c);
        ByteBuf h = ch.alloc().directBuffer(REQUEST_HEADER, REQUEST_HEADER);
        h.writeInt(REQUEST_MAGIC)
                .writeShort(c.flags)
                .writeShort(c.type)
                .writeLong(c.cookie)
                .writeLong(c.offset)
                .writeInt(c.length);
        RingWriter w = s.writer;
        if (w == null && c.bufferIndex >= 0) {
            // Only a session with a writer can name registered pages (see canSendRegistered): not expected here.
            h.release();
            s.inFlight.remove(c.cookie);
            fail(
                    c,
                    new UbdIoException(
                            Errno.EIO,
                            "nbd " + c + " on " + label + ": this connection cannot send a "
                                    + "request's registered pages"));
            return;
        }
        if (w != null) {
            w.write(h, null);
            if (c.type == CMD_WRITE) {
                if (c.bufferIndex >= 0) {
                    w.writeRegistered(c.bufferIndex, c.bufferOffset, c.length);
                } else {
                    w.write(c.data.retainedDuplicate(), null);
                }
            }
            return;
        }
        ch.write(h, ch.voidPromise());
        if (c.type == CMD_WRITE) {
            // The queue's own buffer goes to the socket; this command keeps its reference for a resend.
            ch.write(c.data.retainedDuplicate(), ch.voidPromise());
        }
        s.scheduleFlush();
    }

    private void timeout(NbdCommand c) {
        c.timer = null;
        if (c.finished) {
            return;
        }
        Session s = c.session;
        UbdIoException e = timedOut(c, s != null);
        if (s == null) {
            waiting.remove(c);
            fail(c, e);
            return;
        }
        fail(c, e);
        log.warn("{}; closing that connection", e.getMessage());
        sessionLost(s, "a request timed out");
    }

    private void succeed(NbdCommand c, ByteBuf readData) {
        if (c.finished) {
            if (readData != null) {
                readData.release();
            }
            return;
        }
        if (c.modifies() && (c.flags & CMD_FLAG_FUA) == 0 && info.has(TF_SEND_FLUSH)) {
            latestAck = unflushed.acknowledged();
        } else if (c.type == CMD_FLUSH) {
            unflushed.flushed(c.covers);
        }
        finish(c);
        try {
            c.completion.succeeded(readData);
        } catch (RuntimeException e) {
            log.warn("the completion of {} on {} threw", c, label, e);
        }
    }

    private void fail(NbdCommand c, Throwable error) {
        if (c.finished) {
            return;
        }
        finish(c);
        try {
            c.completion.failed(error);
        } catch (RuntimeException e) {
            log.warn("the completion of {} on {} threw", c, label, e);
        }
    }

    private static void finish(NbdCommand c) {
        c.finished = true;
        c.session = null;
        if (c.timer != null) {
            c.timer.cancel(false);
            c.timer = null;
        }
        if (c.data != null) {
            c.data.release();
            c.data = null;
        }
    }

    private void failAll(Collection<NbdCommand> commands, Throwable error) {
        List<NbdCommand> copy = new ArrayList<>(commands);
        commands.clear();
        for (NbdCommand c : copy) {
            fail(c, error);
        }
    }

    /** A session ended (lost, timed out, protocol error): its unanswered requests wait for a reconnect, or fail. */
    private void sessionLost(Session s, String reason) {
        if (s.gone) {
            return;
        }
        s.dispose(reason);
        noteUnflushedLoss(reason);
        List<NbdCommand> unanswered = new ArrayList<>(s.inFlight.values());
        s.inFlight.clear();
        unanswered.removeIf(c -> {
            if (!c.finished && c.abandoned()) {
                finish(c); // given up by its caller: never sent again
            }
            return c.finished;
        });
        unanswered.sort(Comparator.comparingLong(c -> c.cookie));
        unanswered.forEach(c -> c.session = null);
        if (session != s) {
            failAll(unanswered, new UbdIoException(Errno.EIO, label + ": " + reason));
            return;
        }
        session = null;
        connected = false;
        if (state == State.CLOSED) {
            failAll(unanswered, new UbdIoException(Errno.EIO, label + " is closed"));
            return;
        }
        if (!retryOn()) {
            state = State.DOWN;
            lastAttemptEnd = System.nanoTime() - options.backoffInitial().toNanos();
            String msg = "lost connection to " + label + " (" + reason + "); retry is off (reconnectAttempts=0)";
            log.warn("{}; {} request(s) in flight fail with EIO", msg, unanswered.size());
            failAll(unanswered, new UbdIoException(Errno.EIO, msg));
            failAll(waiting, new UbdIoException(Errno.EIO, msg));
            return;
        }
        for (int i = unanswered.size() - 1; i >= 0; i--) {
            waiting.addFirst(unanswered.get(i));
        }
        log.warn(
                "lost connection to {} ({}); {} request(s) wait for a reconnect (up to {} attempt(s), each within {})",
                label,
                reason,
                waiting.size(),
                options.reconnectAttempts(),
                options.connectTimeout());
        startCycle(options.reconnectAttempts());
    }

    /**
     * A session is gone: writes it acknowledged since its last completed FLUSH were in the server's volatile cache, and
     * a server that restarted has lost them. Recorded for the next FLUSH of the export (see {@link #send}).
     */
    private void noteUnflushedLoss(String reason) {
        if (unflushed.lost(
                latestAck,
                label + ": a connection was lost (" + reason + ") while writes the server had "
                        + "acknowledged were not yet flushed; a server that restarted lost them, so this FLUSH fails (check "
                        + "the data written since the last successful flush)")) {
            log.warn(
                    "{}: the connection was lost with acknowledged writes not yet flushed; the next FLUSH fails with "
                            + "EIO",
                    label);
        }
    }

    /** Drops, on the loop, the commands whose callers gave them up ({@link NbdCommand#abandoned()}); from any thread. */
    void abandon() {
        run(this::reapAbandoned, () -> {});
    }

    /**
     * Commands given up while waiting are dropped. A WRITE, TRIM or WRITE_ZEROES given up while on the wire may still
     * land; the server may run it after a later write of the same range (sent on this connection, or on another queue's),
     * so the connection is reset first: its other requests are sent again on the next one. A READ or FLUSH given up
     * stays in flight, and its reply is dropped.
     */
    private void reapAbandoned() {
        for (Iterator<NbdCommand> it = waiting.iterator(); it.hasNext(); ) {
            NbdCommand c = it.next();
            if (!c.finished && c.abandoned()) {
                it.remove();
                finish(c);
            }
        }
        Session s = session;
        if (s == null || s.gone) {
            return;
        }
        for (NbdCommand c : s.inFlight.values()) {
            if (!c.finished && c.abandoned() && c.modifies()) {
                log.warn(
                        "{}: {} was given up by its caller (timed out) while on the wire; resetting the connection "
                                + "so that it cannot land after a later write",
                        label,
                        c);
                sessionLost(s, "a write on the wire was given up by its caller");
                return;
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ closing

    /**
     * Fails every request with EIO, sends NBD_CMD_DISC, and closes the channel. Idempotent; completes once the channel
     * is closed, or after 5 s at most.
     */
    Mono<Void> close() {
        run(this::doClose, () -> closed.tryEmitEmpty());
        return closed.asMono().timeout(Duration.ofSeconds(5), Mono.empty());
    }

    private void doClose() {
        if (state == State.CLOSED) {
            return;
        }
        state = State.CLOSED;
        connected = false;
        if (reconnectTimer != null) {
            reconnectTimer.cancel(false);
            reconnectTimer = null;
        }
        if (attemptUnderWay != null) {
            attemptUnderWay.fail(new NbdException(label + " was closed while connecting"));
        }
        UbdIoException e = new UbdIoException(Errno.EIO, "the nbd backend for " + label + " was closed");
        failAll(waiting, e);
        Session s = session;
        session = null;
        if (s == null || s.gone) {
            closeIo();
            closed.tryEmitEmpty();
            return;
        }
        s.stopDecoding("closed");
        List<NbdCommand> unanswered = new ArrayList<>(s.inFlight.values());
        s.inFlight.clear();
        failAll(unanswered, e);
        Channel ch = s.channel;
        ch.closeFuture().addListener(f -> {
            closeIo(); // after the DISC, which the session's writer may still be sending
            closed.tryEmitEmpty();
        });
        if (ch.isActive()) {
            ByteBuf h = ch.alloc().directBuffer(REQUEST_HEADER, REQUEST_HEADER);
            h.writeInt(REQUEST_MAGIC)
                    .writeShort(0)
                    .writeShort(CMD_DISC)
                    .writeLong(nextCookie++)
                    .writeLong(0)
                    .writeInt(0);
            if (s.writer != null) {
                s.writer.write(h, ch::close);
            } else {
                ch.writeAndFlush(h).addListener(ChannelFutureListener.CLOSE);
            }
            // A socket that cannot take 28 bytes is not waited for long.
            loop.schedule(
                    () -> {
                        ch.close();
                    },
                    1,
                    TimeUnit.SECONDS);
            log.info("disconnected from {}", label);
        } else {
            ch.close();
        }
    }

    /** Closes {@link #ring} once the latest session's writer has its last write back (at once if there is none). */
    private void closeIo() {
        if (ring == null) {
            return;
        }
        if (lastWriter != null) {
            lastWriter.closeWithIo();
        } else {
            ring.close();
        }
    }

    @Override
    public String toString() {
        return "NbdConnection[" + label + "]";
    }

    // ------------------------------------------------------------------------------------------------ session

    /**
     * One channel past its handshake: sends requests and decodes simple replies. A READ's payload is handed on as a
     * retained slice of the inbound buffer when the buffer holds all of it, else gathered into one direct buffer.
     */
    final class Session extends ChannelInboundHandlerAdapter {
        final Channel channel;
        final ExportInfo info;
        final LongObjectHashMap<NbdCommand> inFlight = new LongObjectHashMap<>();
        private final ByteBuf header = Unpooled.buffer(REPLY_HEADER, REPLY_HEADER);
        private final Runnable flushTask = this::flushNow;
        private NbdCommand payloadFor;
        private int payloadRemaining;
        private ByteBuf assembly;
        private boolean flushScheduled;
        private String closeReason;
        boolean gone;
        /** Writes this session's requests when the connection has a loop registration, else null (the channel does). */
        final RingWriter writer;

        Session(Channel channel, ExportInfo info) {
            this.channel = channel;
            this.info = info;
            if (ring != null && tls == null && channel instanceof UnixChannel u) {
                writer = new RingWriter(ring, u.fd().intValue(), reason -> sessionLost(this, reason));
                lastWriter = writer;
            } else {
                writer = null;
            }
        }

        /** One flush for every request sent in this loop turn. */
        void scheduleFlush() {
            if (!flushScheduled) {
                flushScheduled = true;
                loop.execute(flushTask);
            }
        }

        private void flushNow() {
            flushScheduled = false;
            channel.flush();
        }

        /** Stops decoding, releases what the decoder holds, stops writing, and closes the channel. */
        void dispose(String reason) {
            stopDecoding(reason);
            if (writer != null) {
                writer.close();
            }
            channel.close();
        }

        /** Stops decoding; a READ whose payload was being read goes back to {@link #inFlight}. */
        void stopDecoding(String reason) {
            gone = true;
            if (closeReason == null) {
                closeReason = reason;
            }
            if (assembly != null) {
                assembly.release();
                assembly = null;
            }
            if (payloadFor != null) {
                // Its reply was being read: it goes back with the others.
                inFlight.put(payloadFor.cookie, payloadFor);
                payloadFor = null;
            }
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (!(msg instanceof ByteBuf in)) {
                ReferenceCountUtil.release(msg);
                return;
            }
            try {
                if (!gone) {
                    decode(in);
                }
            } catch (NbdException e) {
                log.warn("protocol error on {}: {}; closing that connection", label, e.getMessage());
                sessionLost(this, e.getMessage());
            } finally {
                in.release();
            }
        }

        private void decode(ByteBuf in) {
            while (in.isReadable() && !gone) {
                if (payloadFor != null) {
                    int n = Math.min(payloadRemaining, in.readableBytes());
                    if (assembly == null && n == payloadRemaining) {
                        NbdCommand c = payloadFor;
                        payloadFor = null;
                        payloadRemaining = 0;
                        succeed(c, in.readRetainedSlice(n));
                    } else {
                        if (assembly == null) {
                            assembly = channel.alloc().directBuffer(payloadFor.length, payloadFor.length);
                        }
                        assembly.writeBytes(in, n);
                        payloadRemaining -= n;
                        if (payloadRemaining == 0) {
                            NbdCommand c = payloadFor;
                            ByteBuf data = assembly;
                            payloadFor = null;
                            assembly = null;
                            succeed(c, data);
                        }
                    }
                    continue;
                }
                ByteBuf h = in;
                if (header.isReadable() || in.readableBytes() < REPLY_HEADER) {
                    header.writeBytes(in, Math.min(REPLY_HEADER - header.readableBytes(), in.readableBytes()));
                    if (header.readableBytes() < REPLY_HEADER) {
                        return;
                    }
                    h = header;
                }
                int magic = h.readInt();
                int error = h.readInt();
                long cookie = h.readLong();
                if (h == header) {
                    header.clear();
                }
                reply(magic, error, cookie);
            }
        }

        private void reply(int magic, int error, long cookie) {
            if (magic != SIMPLE_REPLY_MAGIC) {
                throw new NbdException("unexpected reply magic 0x" + Integer.toHexString(magic)
                        + (magic == STRUCTURED_REPLY_MAGIC ? " (a structured reply, which was not negotiated)" : ""));
            }
            NbdCommand c = inFlight.remove(cookie);
            if (c == null) {
                throw new NbdException("a reply for unknown cookie " + cookie);
            }
            if (error != 0) {
                int errno = NbdProtocol.errno(error);
                fail(
                        c,
                        new UbdIoException(
                                errno, "nbd " + c + " on " + label + ": the server answered " + errorName(error)));
            } else if (c.type == CMD_READ && c.length > 0) {
                payloadFor = c;
                payloadRemaining = c.length;
            } else {
                succeed(c, null);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            sessionLost(this, closeReason != null ? closeReason : "the server closed the connection");
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            if (!(cause instanceof IOException)) {
                // Not the network: a bug to be seen whole.
                log.warn("unexpected error on {}; closing that connection", label, cause);
            }
            if (closeReason == null) {
                closeReason = describe(cause);
            }
            sessionLost(this, closeReason);
        }
    }
}

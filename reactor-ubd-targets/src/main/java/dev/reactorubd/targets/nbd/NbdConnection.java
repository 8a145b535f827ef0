package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.uring.LoopIo;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioDomainSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.uring.IoUringDomainSocketChannel;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringSocketChannel;
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
 *
 * <h2>States</h2>
 * <pre>
 * NEW --open--> CONNECTING --handshake done--> READY --session lost, retry on--> CONNECTING (a cycle of attempts)
 *                   |                            |
 *                   +--cycle failed--> DOWN <----+--session lost, retry off
 *                                       |
 *                                       +--a request comes--> CONNECTING
 * any --close--> CLOSED
 * </pre>
 * A first connection ({@link #open}) that fails, or finds another size than expected, ends in CLOSED. Each attempt
 * is a {@link ConnectAttempt}; each channel past its handshake an {@link NbdSession}, which writes the requests and
 * decodes the replies. A request's own life (waiting, on the wire, answered once) is kept here.
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
    private NbdSession session;
    private volatile boolean connected;
    private long expectedSize;
    private ExportInfo info;
    private long nextCookie = 1;
    private int attempt;
    private int attemptsThisCycle;
    private long lastAttemptEnd = System.nanoTime() - TimeUnit.DAYS.toNanos(1);
    private Throwable lastError;
    private ScheduledFuture<?> reconnectTimer;
    private ConnectAttempt attemptUnderWay;
    /**
     * The loop registration sessions write through ({@link RingWriter}), or null: they write through their channel.
     * Closed with the connection.
     */
    private final LoopIo ring;
    /** The writer of the latest session, which closes {@link #ring} once its last write is back. */
    private RingWriter lastWriter;
    /** How this connection's sessions report replies and their end. */
    private final NbdSession.Events sessionEvents = new NbdSession.Events() {
        @Override
        public void answered(NbdCommand c, ByteBuf readData) {
            succeed(c, readData);
        }

        @Override
        public void refused(NbdCommand c, UbdIoException error) {
            fail(c, error);
        }

        @Override
        public void lost(NbdSession s, String reason) {
            sessionLost(s, reason);
        }
    };

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
    private void connectOnce(BiConsumer<NbdSession, NbdException> done) {
        ConnectAttempt a =
                new ConnectAttempt(uri, options, loop, channelClass, address, tls, new ConnectAttempt.Outcome() {
                    @Override
                    public void connected(ConnectAttempt attempt, Channel channel, ExportInfo exportInfo) {
                        attemptEnded(attempt);
                        NbdSession s = new NbdSession(label, channel, exportInfo, ring, sessionEvents);
                        if (s.writer != null) {
                            lastWriter = s.writer;
                        }
                        channel.pipeline().addLast(s);
                        done.accept(s, null);
                    }

                    @Override
                    public void failed(ConnectAttempt attempt, NbdException error) {
                        attemptEnded(attempt);
                        done.accept(null, error);
                    }
                });
        attemptUnderWay = a;
        a.start();
    }

    private void attemptEnded(ConnectAttempt a) {
        if (attemptUnderWay == a) {
            attemptUnderWay = null;
        }
    }

    private void adopt(NbdSession s) {
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

    private void reconnected(NbdSession s, NbdException error) {
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
        NbdSession s = session;
        if (c.bufferIndex >= 0 && !s.canSendRegistered()) {
            // Only a session with a writer can name registered pages (see canSendRegistered): not expected here.
            fail(
                    c,
                    new UbdIoException(
                            Errno.EIO,
                            "nbd " + c + " on " + label + ": this connection cannot send a "
                                    + "request's registered pages"));
            return;
        }
        c.cookie = nextCookie++;
        c.session = s;
        c.sends++;
        s.inFlight.put(c.cookie, c);
        s.send(c);
    }

    private void timeout(NbdCommand c) {
        c.timer = null;
        if (c.finished) {
            return;
        }
        NbdSession s = c.session;
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
    private void sessionLost(NbdSession s, String reason) {
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
        NbdSession s = session;
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
            attemptUnderWay.cancel(new NbdException(label + " was closed while connecting"));
        }
        UbdIoException e = new UbdIoException(Errno.EIO, "the nbd backend for " + label + " was closed");
        failAll(waiting, e);
        NbdSession s = session;
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
            s.disconnect(nextCookie++);
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
}

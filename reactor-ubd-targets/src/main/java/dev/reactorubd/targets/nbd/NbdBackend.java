package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.RequestChecks;
import dev.reactorubd.server.ZeroCopyBackend;
import dev.reactorubd.uring.LoopIo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoEventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;

/**
 * A {@link BlockBackend} that serves an NBD export: an NBD client (fixed newstyle handshake, simple replies) on Netty
 * io_uring sockets, over TCP or a Unix socket.
 *
 * <pre>{@code
 * NbdBackend nbd = NbdBackend.connect("nbd://127.0.0.1:10809/disk", NbdOptions.defaults()).block();
 * UbdDevice dev = server.serve(DeviceSpec.builder().capacityBytes(nbd.size()).queues(2)
 *         .logicalBlockSize(Math.max(512, nbd.minimumBlockSize())).readOnly(nbd.readOnly()).build(), nbd).block();
 * ...                                                   // dev.blockDevicePath(): /dev/ublkbN, backed by the export
 * dev.close().block();
 * nbd.close().block();                                  // the application owns the backend
 * }</pre>
 *
 * <h2>Requests</h2>
 * Many requests are in flight on a connection at once, matched to their replies by cookie. READ and WRITE larger than
 * the server's maximum block size (at most 32 MiB; see {@link #maximumPayload()}) are split into several NBD
 * requests. READ data reaches the caller as a slice of the connection's inbound buffer when one buffer holds the
 * whole payload (no copy), else gathered into one direct buffer. WRITE data is written to the socket from the
 * caller's buffer (retained, not copied). A server error fails the request with a {@link UbdIoException} carrying the
 * errno the server sent (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, EOPNOTSUPP, ESHUTDOWN; anything else EIO).
 * Writes, discards and zeroing of a read-only export ({@link #readOnly()}) fail with EROFS without reaching the
 * server.
 *
 * <h2>Capabilities</h2>
 * {@link #capabilities()} follows the export's transmission flags: FLUSH with NBD_FLAG_SEND_FLUSH, FUA with
 * SEND_FUA (and SEND_FLUSH), DISCARD with SEND_TRIM, WRITE_ZEROES with SEND_WRITE_ZEROES (noUnmap is sent as
 * NBD_CMD_FLAG_NO_HOLE); a read-only export offers neither DISCARD nor WRITE_ZEROES. A direct call of
 * {@code write(.., fua=true)} on an export without SEND_FUA writes, then flushes when SEND_FLUSH is offered.
 *
 * <h2>Connections and threads</h2>
 * {@link #connect} opens the backend's own connection on an event loop of {@link NbdOptions#eventLoopGroup()} (or
 * of a single-thread io_uring group the backend starts, named {@code ubd-nbd-N}). Direct calls of the request
 * methods use it, from any thread; answers come on its loop. When the export advertises NBD_FLAG_CAN_MULTI_CONN
 * (and {@link NbdOptions#multiConn()}), {@link #bind} gives each queue its own connection, made on the queue's own
 * io_uring loop, so that its requests and replies never leave that thread; the connection is closed when the queue
 * terminates. Otherwise every queue shares the backend's connection (requests hop to its loop, answers hop back).
 * {@link #connectionCount()} tells how many connections are up.
 *
 * <h2>TLS</h2>
 * An {@code nbds://} or {@code nbds+unix://} URI ({@link NbdUri}) makes every connection (the backend's own, each
 * queue's, every reconnect) send NBD_OPT_STARTTLS right after the greeting and do TLS through a Netty {@code
 * SslHandler} before the export is chosen; the credentials ({@link NbdOptions}, or the URI's {@code tls-certificates})
 * are read once, in {@link #connect}, off the event loops. TLS is then required: a server that refuses STARTTLS, or
 * whose certificate does not chain to the CA or name the host, fails the connect with an {@link NbdException}; nothing
 * is ever sent in plain text instead. With TLS the queues' connections write through their channel (and so through
 * the SslHandler), never from the request's registered pages: {@link Capability#ZERO_COPY} is not offered.
 *
 * <h2>A hostile server</h2>
 * The handshake holds at most one option reply (64 KiB) and takes at most 1 MiB and 64 replies; an export larger than
 * {@link NbdOptions#maxExportSize()}, or with block sizes outside the protocol's rules or a maximum block below 4 KiB,
 * is refused; a reply's payload length is always the request's own, and a reply that is not a simple one for a request
 * in flight closes the connection. The connect timeout bounds the handshake, the request timeout every request.
 *
 * <h2>Failures</h2>
 * See {@link NbdOptions} for the request timeout (ETIMEDOUT) and the reconnect policy. In short: a lost connection
 * never hangs IO; requests wait for a reconnect under a bounded policy or fail with EIO, and service resumes when the
 * server is back. A reconnect re-runs the handshake and refuses an export whose size changed.
 *
 * <h2>Given-up requests</h2>
 * A request whose Mono is cancelled (the server's request timeout, a {@code timeout} decorator) is never sent again:
 * dropped if it waits for a connection, not re-sent after a reconnect. A READ or FLUSH already on the wire stays
 * there and its reply is dropped; a WRITE, TRIM or WRITE_ZEROES on the wire resets its connection at once (the others
 * in flight are sent again on the next one), so that it cannot land after a later write of the same range.
 *
 * <h2>Durability</h2>
 * Writes the server acknowledged sit in its volatile cache until a FLUSH completes. When a connection is lost with
 * acknowledged writes not yet flushed, a server that restarted may have dropped them, and re-sending what was in
 * flight cannot bring them back: the export's next FLUSH (on any of its connections) then fails with EIO, once, so
 * that the file system above learns that data it was told is written may be gone. FUA writes are durable when
 * acknowledged and do not count; an export without NBD_FLAG_SEND_FLUSH has no volatile cache to lose.
 */
public final class NbdBackend implements BlockBackend {
    private static final Logger log = LoggerFactory.getLogger(NbdBackend.class);
    private static final AtomicInteger GROUPS = new AtomicInteger();
    /** TRIM and WRITE_ZEROES carry a 32-bit length: longer ranges go in pieces of this. */
    private static final int RANGE_CHUNK = 1 << 30;

    private final NbdUri uri;
    private final NbdOptions options;
    private final EventLoopGroup group;
    private final boolean ownGroup;
    private final InetSocketAddress resolved;
    private final NbdConnection main;
    private final ExportInfo info;
    private final Set<Capability> capabilities;
    private final Set<NbdConnection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closing = new AtomicBoolean();
    /** Shared by every connection: see {@link NbdConnection#NbdConnection} and the class comment's Durability. */
    private final UnflushedWrites unflushed;

    private final Sinks.Empty<Void> closed = Sinks.empty();
    /** TLS for every connection, queues' and reconnects included, or null for a plain URI. */
    private final NbdTls tls;

    private NbdBackend(
            NbdUri uri,
            NbdOptions options,
            EventLoopGroup group,
            boolean ownGroup,
            InetSocketAddress resolved,
            NbdConnection main,
            ExportInfo info,
            UnflushedWrites unflushed,
            NbdTls tls) {
        this.tls = tls;
        this.unflushed = unflushed;
        this.uri = uri;
        this.options = options;
        this.group = group;
        this.ownGroup = ownGroup;
        this.resolved = resolved;
        this.main = main;
        this.info = info;
        this.connections.add(main);
        EnumSet<Capability> caps = EnumSet.noneOf(Capability.class);
        if (info.has(TF_SEND_FLUSH)) {
            caps.add(Capability.FLUSH);
            if (info.has(TF_SEND_FUA)) {
                caps.add(Capability.FUA);
            }
        }
        if (!info.has(TF_READ_ONLY)) {
            if (info.has(TF_SEND_TRIM)) {
                caps.add(Capability.DISCARD);
            }
            if (info.has(TF_SEND_WRITE_ZEROES)) {
                caps.add(Capability.WRITE_ZEROES);
            }
        }
        if (!info.has(TF_READ_ONLY) && options.multiConn() && info.has(TF_CAN_MULTI_CONN) && tls == null) {
            // Each queue gets its own connection on its loop, which on an io_uring loop sends WRITEs from the
            // request's own pages: see QueueBackend. Not with TLS: those pages would go to the socket unencrypted.
            caps.add(Capability.ZERO_COPY);
        }
        this.capabilities = Set.copyOf(caps);
    }

    /**
     * {@link #connect(NbdUri, NbdOptions)} with a parsed URI.
     *
     * @param uri the NBD URI: {@code nbd://host[:port]/export} or {@code nbd+unix:///export?socket=PATH}
     * @param options the connection options
     * @return {@link #connect(NbdUri, NbdOptions)} with a parsed URI
     */
    public static Mono<NbdBackend> connect(String uri, NbdOptions options) {
        return Mono.defer(() -> connect(NbdUri.parse(uri), options));
    }

    /**
     * {@link #connect(NbdUri, NbdOptions)} with {@link NbdOptions#defaults()}.
     *
     * @param uri the NBD URI: {@code nbd://host[:port]/export} or {@code nbd+unix:///export?socket=PATH}
     * @return {@link #connect(NbdUri, NbdOptions)} with {@link NbdOptions#defaults()}
     */
    public static Mono<NbdBackend> connect(String uri) {
        return connect(uri, NbdOptions.defaults());
    }

    /**
     * Connects to an export and completes after the first handshake, when {@link #size()} is known. Lazy: nothing
     * happens until subscribed. The first connection is tried once, within {@link NbdOptions#connectTimeout()}; a
     * failure ({@link NbdException}: refused, timed out, unknown export, not an NBD server...) is signalled as it is
     * (wrap the Mono in {@code retryWhen} to insist). A host name is resolved once, here, off the event loops, within
     * the connect timeout; reconnects go to the address found then.
     *
     * @param uri the NBD URI: {@code nbd://host[:port]/export} or {@code nbd+unix:///export?socket=PATH}, or their
     *            TLS forms {@code nbds://}, {@code nbds+unix://}
     * @param options the connection options
     * @return a Mono of the backend, connected and past its handshake; close it when done
     */
    public static Mono<NbdBackend> connect(NbdUri uri, NbdOptions options) {
        return Mono.defer(() -> {
            boolean own = options.eventLoopGroup() == null;
            EventLoopGroup group = own ? newGroup() : options.eventLoopGroup();
            Mono<Optional<InetSocketAddress>> address = uri.isUnix()
                    ? Mono.just(Optional.empty())
                    : Mono.fromCallable(() -> Optional.of(resolve(uri)))
                            .subscribeOn(Schedulers.boundedElastic())
                            .timeout(
                                    options.connectTimeout(),
                                    Mono.error(() -> new NbdException("resolving the host of " + uri
                                            + " took longer than " + options.connectTimeout() + "; check DNS")));
            // Reading the credentials is file IO: off the event loops, like resolving, and once for every connection.
            Mono<Optional<NbdTls>> credentials = !uri.tls()
                    ? Mono.just(Optional.empty())
                    : Mono.fromCallable(() -> Optional.of(NbdTls.load(uri, options)))
                            .subscribeOn(Schedulers.boundedElastic());
            return Mono.zip(address, credentials)
                    .flatMap(t -> {
                        Optional<InetSocketAddress> a = t.getT1();
                        NbdTls tls = t.getT2().orElse(null);
                        UnflushedWrites unflushed = new UnflushedWrites();
                        NbdConnection c = new NbdConnection(
                                uri.toString(), uri, options, group.next(), a.orElse(null), -1, unflushed, tls);
                        return c.open()
                                .map(i ->
                                        new NbdBackend(uri, options, group, own, a.orElse(null), c, i, unflushed, tls));
                    })
                    .onErrorResume(e -> (own ? shutdown(group) : Mono.<Void>empty()).then(Mono.error(e)));
        });
    }

    private static InetSocketAddress resolve(NbdUri uri) {
        try {
            return new InetSocketAddress(InetAddress.getByName(uri.host()), uri.port());
        } catch (UnknownHostException e) {
            throw new NbdException(
                    "cannot resolve the host of " + uri + ": " + e.getMessage() + "; check the host name", e);
        }
    }

    private static EventLoopGroup newGroup() {
        return new MultiThreadIoEventLoopGroup(
                1,
                new DefaultThreadFactory("ubd-nbd-" + GROUPS.incrementAndGet(), true),
                IoUring.isAvailable() ? IoUringIoHandler.newFactory() : NioIoHandler.newFactory());
    }

    private static Mono<Void> shutdown(EventLoopGroup group) {
        return Mono.<Void>create(
                        sink -> group.shutdownGracefully(0, 1, TimeUnit.SECONDS).addListener(f -> sink.success()))
                .timeout(Duration.ofSeconds(5), Mono.empty());
    }

    // ------------------------------------------------------------------------------------------------ what it is

    /** {@return the export's URI} */
    public NbdUri uri() {
        return uri;
    }

    /** {@return the options it was connected with} */
    public NbdOptions options() {
        return options;
    }

    /** The export's size in bytes, from the first handshake. */
    @Override
    public long size() {
        return info.size();
    }

    /** {@return whether the server marked the export read-only (NBD_FLAG_READ_ONLY): make the device read-only too} */
    public boolean readOnly() {
        return info.has(TF_READ_ONLY);
    }

    /** {@return the export's transmission flags ({@code NBD_FLAG_*} bits) from the first handshake} */
    public int transmissionFlags() {
        return info.flags();
    }

    /**
     * {@return the server's minimum block size (1 when it stated none): a device's logical block should be at least
     * this}
     */
    public int minimumBlockSize() {
        return info.minBlock();
    }

    /** {@return the server's preferred block size (4096 when it stated none)} */
    public int preferredBlockSize() {
        return info.prefBlock();
    }

    /**
     * The largest READ or WRITE sent as one NBD request; longer ones are split. The server's maximum, at most 32 MiB.
     *
     * @return the largest READ or WRITE sent as one NBD request; longer ones are split
     */
    public int maximumPayload() {
        return info.maxPayload();
    }

    /**
     * {@return whether queues get connections of their own: the server allows it (CAN_MULTI_CONN) and the options ask
     * it}
     */
    public boolean multiConn() {
        return options.multiConn() && info.has(TF_CAN_MULTI_CONN);
    }

    /** {@return connections currently up and past their handshake: the backend's own and those of bound queues} */
    public int connectionCount() {
        int n = 0;
        for (NbdConnection c : connections) {
            if (c.isConnected()) {
                n++;
            }
        }
        return n;
    }

    @Override
    public Set<Capability> capabilities() {
        return capabilities;
    }

    // ------------------------------------------------------------------------------------------------ requests

    /**
     * Reads through the backend's own connection. {@code allocator} is not used: the data comes in the connection's
     * own buffers (a retained slice, or one direct buffer when the payload spanned several reads, or a composite of
     * those for a split request); the caller releases it. Fails with EINVAL beyond the export's size.
     */
    @Override
    public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
        return read(main, offset, length);
    }

    /**
     * Writes through the backend's own connection. {@code data} is retained until the server answered (it may be
     * sent again after a reconnect) and written to the socket as it is; the caller keeps its own reference.
     */
    @Override
    public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
        return write(main, offset, data, fua);
    }

    @Override
    public Mono<Void> flush() {
        return flush(main);
    }

    @Override
    public Mono<Void> discard(long offset, long length) {
        return discard(main, offset, length);
    }

    @Override
    public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
        return writeZeroes(main, offset, length, noUnmap);
    }

    private long deadline() {
        return System.nanoTime() + options.requestTimeout().toNanos();
    }

    private UbdIoException badRange(long offset, long length) {
        return RequestChecks.outOfRange(info.size(), offset, length, uri);
    }

    private UbdIoException readOnlyError(String what) {
        return RequestChecks.readOnly(what, "the export " + uri);
    }

    Mono<ByteBuf> read(NbdConnection c, long offset, int length) {
        UbdIoException bad = badRange(offset, length);
        if (bad != null) {
            return Mono.error(bad);
        }
        if (length == 0) {
            return Mono.just(Unpooled.EMPTY_BUFFER);
        }
        int max = info.maxPayload();
        return Mono.create(sink -> {
            long deadline = deadline();
            if (length <= max) {
                c.submit(new NbdCommand(CMD_READ, 0, offset, length, null, deadline, new MonoCompletion(sink, c)));
                return;
            }
            SplitCommand parts = new SplitCommand((length + max - 1) / max, true, new MonoCompletion(sink, c));
            for (int i = 0, at = 0; at < length; i++, at += max) {
                c.submit(new NbdCommand(
                        CMD_READ, 0, offset + at, Math.min(max, length - at), null, deadline, parts.part(i)));
            }
        });
    }

    Mono<Void> write(NbdConnection c, long offset, ByteBuf data, boolean fua) {
        int from = data.readerIndex();
        return write(
                c,
                offset,
                data.readableBytes(),
                fua,
                (flags, at, n, deadline, done) -> new NbdCommand(
                        CMD_WRITE, flags, offset + at, n, data.retainedSlice(from + at, n), deadline, done));
    }

    /** Makes the command of one part of a WRITE: bytes {@code at} to {@code at + n} of it. */
    private interface WritePart {
        NbdCommand make(int flags, int at, int n, long deadline, NbdCommand.Completion done);
    }

    /** A WRITE of {@code length} bytes, in parts of at most the export's payload size; FUA as the export allows. */
    private Mono<Void> write(NbdConnection c, long offset, int length, boolean fua, WritePart part) {
        if (readOnly()) {
            return Mono.error(readOnlyError("write"));
        }
        UbdIoException bad = badRange(offset, length);
        if (bad != null) {
            return Mono.error(bad);
        }
        if (length == 0) {
            return Mono.empty();
        }
        boolean nativeFua = fua && info.has(TF_SEND_FUA);
        int flags = nativeFua ? CMD_FLAG_FUA : 0;
        int max = info.maxPayload();
        Mono<Void> w = Mono.create(sink -> {
            long deadline = deadline();
            if (length <= max) {
                c.submit(part.make(flags, 0, length, deadline, new MonoCompletion(sink, c)));
                return;
            }
            SplitCommand parts = new SplitCommand((length + max - 1) / max, false, new MonoCompletion(sink, c));
            for (int i = 0, at = 0; at < length; i++, at += max) {
                c.submit(part.make(flags, at, Math.min(max, length - at), deadline, parts.part(i)));
            }
        });
        return fua && !nativeFua && info.has(TF_SEND_FLUSH) ? w.then(flush(c)) : w;
    }

    Mono<Void> flush(NbdConnection c) {
        if (!info.has(TF_SEND_FLUSH)) {
            return Mono.empty();
        }
        return Mono.create(
                sink -> c.submit(new NbdCommand(CMD_FLUSH, 0, 0, 0, null, deadline(), new MonoCompletion(sink, c))));
    }

    Mono<Void> discard(NbdConnection c, long offset, long length) {
        if (readOnly()) {
            return Mono.error(readOnlyError("discard"));
        }
        if (!info.has(TF_SEND_TRIM)) {
            return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, uri + " does not offer TRIM"));
        }
        return ranged(c, CMD_TRIM, 0, offset, length);
    }

    Mono<Void> writeZeroes(NbdConnection c, long offset, long length, boolean noUnmap) {
        if (readOnly()) {
            return Mono.error(readOnlyError("write-zeroes"));
        }
        if (!info.has(TF_SEND_WRITE_ZEROES)) {
            return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, uri + " does not offer WRITE_ZEROES"));
        }
        return ranged(c, CMD_WRITE_ZEROES, noUnmap ? CMD_FLAG_NO_HOLE : 0, offset, length);
    }

    private Mono<Void> ranged(NbdConnection c, int type, int flags, long offset, long length) {
        UbdIoException bad = badRange(offset, length);
        if (bad != null) {
            return Mono.error(bad);
        }
        if (length == 0) {
            return Mono.empty();
        }
        return Mono.create(sink -> {
            long deadline = deadline();
            if (length <= RANGE_CHUNK) {
                c.submit(
                        new NbdCommand(type, flags, offset, (int) length, null, deadline, new MonoCompletion(sink, c)));
                return;
            }
            SplitCommand parts = new SplitCommand(
                    (int) ((length + RANGE_CHUNK - 1) / RANGE_CHUNK), false, new MonoCompletion(sink, c));
            int i = 0;
            for (long at = 0; at < length; at += RANGE_CHUNK, i++) {
                c.submit(new NbdCommand(
                        type,
                        flags,
                        offset + at,
                        (int) Math.min(RANGE_CHUNK, length - at),
                        null,
                        deadline,
                        parts.part(i)));
            }
        });
    }

    // ------------------------------------------------------------------------------------------------ queues

    /**
     * With multi-conn ({@link #multiConn()}), a backend for {@code queue} with a connection of its own on the queue's
     * loop, open (handshake done) when the Mono completes, and closed when the queue terminates; an error (the server
     * refused another connection) fails the device's start. Without multi-conn, or on a loop that is neither io_uring
     * nor NIO, this backend itself (the shared connection).
     */
    @Override
    public Mono<BlockBackend> bind(UbdQueue queue) {
        if (!multiConn()) {
            return Mono.just(this);
        }
        if (!(queue.loop() instanceof EventLoop loop) || NbdConnection.channelClass(loop, uri.isUnix()) == null) {
            log.debug(
                    "queue {} runs on {}, where no socket can be opened; it shares the connection to {}",
                    queue.id(),
                    queue.loop(),
                    uri);
            return Mono.just(this);
        }
        // On an io_uring loop the connection writes through a registration of its own with the loop, so that a
        // WRITE can send the ublk request's registered pages (zero copy); elsewhere through its channel.
        // Never with TLS: a ring writes to the descriptor, around the SslHandler (and ZERO_COPY is not offered then).
        Mono<Optional<LoopIo>> io = tls == null && loop instanceof IoEventLoop l && l.isCompatible(LoopIo.class)
                ? LoopIo.register(loop).map(Optional::of)
                : Mono.just(Optional.empty());
        return io.flatMap(ring -> Mono.defer(() -> {
            if (closing.get()) {
                ring.ifPresent(LoopIo::closeOnLoop);
                return Mono.error(new NbdException("the nbd backend for " + uri + " is closed"));
            }
            NbdConnection c = new NbdConnection(
                    uri + " (queue " + queue.id() + ")",
                    uri,
                    options,
                    loop,
                    resolved,
                    info.size(),
                    ring.orElse(null),
                    unflushed,
                    tls);
            connections.add(c);
            if (closing.get()) {
                c.close().subscribe();
            }
            return c.open()
                    .<BlockBackend>map(i -> {
                        queue.onTerminated()
                                .subscribe(null, e -> closeQueueConnection(c), () -> closeQueueConnection(c));
                        return new QueueBackend(c, queue.id());
                    })
                    .doOnError(e -> connections.remove(c));
        }));
    }

    private void closeQueueConnection(NbdConnection c) {
        c.close().subscribe(null, e -> connections.remove(c), () -> connections.remove(c));
    }

    /**
     * A WRITE whose payload is a ublk request's registered pages, sent from them: through a connection that {@link
     * NbdConnection#canSendRegistered() can}, on the loop whose ring holds them.
     */
    Mono<Void> writeRegistered(NbdConnection c, long offset, int length, int bufferIndex, boolean fua) {
        return write(
                c,
                offset,
                length,
                fua,
                (flags, at, n, deadline, done) ->
                        new NbdCommand(CMD_WRITE, flags, offset + at, n, null, bufferIndex, at, deadline, done));
    }

    /**
     * The backend of one queue: the same export, through the queue's own connection, called on the queue's loop. On an
     * io_uring loop it takes WRITEs in place (zero copy): their pages go from the request to the socket.
     */
    private final class QueueBackend implements ZeroCopyBackend {
        private final NbdConnection c;
        private final int queueId;

        QueueBackend(NbdConnection c, int queueId) {
            this.c = c;
            this.queueId = queueId;
        }

        @Override
        public Mono<ByteBuf> read(long offset, int length, ByteBufAllocator allocator) {
            return NbdBackend.this.read(c, offset, length);
        }

        @Override
        public Mono<Void> write(long offset, ByteBuf data, boolean fua) {
            return NbdBackend.this.write(c, offset, data, fua);
        }

        @Override
        public boolean servesInPlace(IoOp op) {
            return op == IoOp.WRITE && c.canSendRegistered();
        }

        @Override
        public Mono<Void> readInto(long offset, int length, int bufferIndex) {
            // Not asked for (servesInPlace): a READ's reply arrives in a buffer of the channel's.
            return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, this + " does not read in place"));
        }

        @Override
        public Mono<Void> writeFrom(long offset, int length, int bufferIndex, boolean fua) {
            if (!c.canSendRegistered()) {
                return Mono.error(new UbdIoException(Errno.EOPNOTSUPP, this + " does not write in place"));
            }
            return NbdBackend.this.writeRegistered(c, offset, length, bufferIndex, fua);
        }

        @Override
        public Mono<Void> flush() {
            return NbdBackend.this.flush(c);
        }

        @Override
        public Mono<Void> discard(long offset, long length) {
            return NbdBackend.this.discard(c, offset, length);
        }

        @Override
        public Mono<Void> writeZeroes(long offset, long length, boolean noUnmap) {
            return NbdBackend.this.writeZeroes(c, offset, length, noUnmap);
        }

        @Override
        public Set<Capability> capabilities() {
            return capabilities;
        }

        @Override
        public long size() {
            return info.size();
        }

        @Override
        public Mono<BlockBackend> bind(UbdQueue queue) {
            return Mono.just(this);
        }

        @Override
        public Mono<Void> close() {
            return Mono.defer(c::close).doFinally(s -> connections.remove(c));
        }

        @Override
        public String toString() {
            return "nbd(" + uri + ", queue " + queueId + ")";
        }
    }

    // ------------------------------------------------------------------------------------------------ closing

    /**
     * Closes every connection (queues' too): requests still waiting or in flight fail with EIO, NBD_CMD_DISC is sent,
     * the sockets are closed; then the backend's own event loop group, if it started one, is shut down. Lazy and
     * idempotent; bounded (about 6 s at worst). Devices still using the backend see EIO from then on.
     */
    @Override
    public Mono<Void> close() {
        return Mono.defer(() -> {
            if (closing.compareAndSet(false, true)) {
                List<NbdConnection> all = new ArrayList<>(connections);
                Flux.fromIterable(all)
                        .flatMap(NbdConnection::close)
                        .then()
                        .timeout(Duration.ofSeconds(5), Mono.empty())
                        .then(ownGroup ? shutdown(group) : Mono.empty())
                        .subscribe(null, e -> closed.tryEmitEmpty(), () -> {
                            connections.removeAll(all);
                            log.debug("closed the nbd backend for {}", uri);
                            closed.tryEmitEmpty();
                        });
            }
            return closed.asMono();
        });
    }

    @Override
    public String toString() {
        return "nbd(" + uri + ", " + info.size() + " bytes)";
    }
}

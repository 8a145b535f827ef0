package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.SslHandler;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;

/**
 * The client side of the fixed newstyle handshake, as the first handler of a new channel: reads the server's greeting,
 * sends the client flags, then (for {@code nbds://}) NBD_OPT_STARTTLS and the TLS handshake through an {@link
 * SslHandler} put in front of it, then NBD_OPT_GO for the export (asking for NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE),
 * falling back to NBD_OPT_EXPORT_NAME when the server answers NBD_REP_ERR_UNSUP. Structured replies are not
 * negotiated.
 *
 * <p>A hostile server cannot make it hold much: the bytes waiting to be parsed are compacted after every read and
 * never exceed {@link #MAX_BUFFERED} (one option reply of at most {@link #MAX_OPTION_REPLY} and its header), the whole
 * handshake is at most {@link #MAX_HANDSHAKE_BYTES} and {@link #MAX_OPTION_REPLIES} replies, and the export's size and
 * block sizes are checked ({@link #checkExport}). The caller bounds its time (the connect timeout).
 *
 * <p>Runs on the channel's loop. Reports exactly once: {@code done} gets the export's info (the handler has then left
 * the pipeline, and any bytes past the handshake were passed on) or an {@link NbdException} (the channel is then
 * closed).
 */
final class Handshake extends ChannelInboundHandlerAdapter {
    /** The longest option reply accepted (its data; the NBD protocol's strings are at most 4 KiB). */
    static final int MAX_OPTION_REPLY = 64 * 1024;
    /** The most bytes ever buffered: one whole option reply and its 20-byte header. */
    static final int MAX_BUFFERED = 20 + MAX_OPTION_REPLY;
    /** The most bytes a server may send during the whole handshake: a real one sends a few hundred. */
    static final int MAX_HANDSHAKE_BYTES = 1 << 20;
    /** The most option replies a server may send: a real one sends a handful (INFO replies, then ACK). */
    static final int MAX_OPTION_REPLIES = 64;
    /** The smallest maximum block size accepted: below it, ordinary requests would split into thousands of pieces. */
    static final int MIN_MAX_BLOCK = 4096;
    /** The largest buffer any handshake held, for tests and debugging: see {@link #handlerRemoved}. */
    static final AtomicInteger LARGEST_BUFFER = new AtomicInteger();

    private enum State {
        GREETING,
        STARTTLS_REPLY,
        TLS,
        GO_REPLIES,
        EXPORT_NAME_REPLY,
        DONE
    }

    private final String uri;
    private final byte[] exportName;
    private final long maxExportSize;
    private final NbdTls tls;
    private final BiConsumer<ExportInfo, Throwable> done;
    private ByteBuf in;
    private State state = State.GREETING;
    private boolean succeeded;
    private long received;
    private int optionReplies;
    private boolean noZeroes;
    private long size = -1;
    private int flags;
    private int minBlock = 1;
    private int prefBlock = 4096;
    private int maxBlock;

    /**
     * @param maxExportSize the largest export size accepted ({@link NbdOptions#maxExportSize()})
     * @param tls           how to do TLS after NBD_OPT_STARTTLS, or null for a plain connection
     */
    Handshake(String uri, String exportName, long maxExportSize, NbdTls tls, BiConsumer<ExportInfo, Throwable> done) {
        this.uri = uri;
        this.exportName = exportName.getBytes(StandardCharsets.UTF_8);
        this.maxExportSize = maxExportSize;
        this.tls = tls;
        this.done = done;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        // The cap is the hard bound; the checks in channelRead keep the data under it.
        in = ctx.alloc().heapBuffer(256, MAX_BUFFERED);
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        if (in != null) {
            LARGEST_BUFFER.accumulateAndGet(in.capacity(), Math::max);
            in.release();
            in = null;
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (state == State.DONE || !(msg instanceof ByteBuf buf)) {
            ctx.fireChannelRead(msg);
            return;
        }
        try {
            received += buf.readableBytes();
            if (received > MAX_HANDSHAKE_BYTES) {
                throw new NbdException(uri + " sent more than " + MAX_HANDSHAKE_BYTES + " bytes during the handshake"
                        + " (a real NBD server sends a few hundred); refusing it: check that the URI names an NBD"
                        + " server");
            }
            // Compacted and fed in pieces that fit: what is kept is at most one incomplete option reply.
            while (buf.isReadable() && state != State.DONE) {
                in.discardReadBytes();
                int n = Math.min(buf.readableBytes(), in.maxWritableBytes());
                if (n == 0) {
                    throw new NbdException(
                            uri + " sent a handshake message longer than " + MAX_BUFFERED + " bytes; refusing it");
                }
                in.writeBytes(buf, n);
                State before = state;
                process(ctx);
                if (before != State.TLS && state == State.TLS && (buf.isReadable() || in.isReadable())) {
                    // These bytes came with the STARTTLS ack, in plain text, before the SslHandler was in front:
                    // only an attacker on the path sends those.
                    throw new NbdException(
                            uri + " sent data outside TLS after accepting NBD_OPT_STARTTLS; refusing" + " it");
                }
            }
            if (buf.isReadable() && succeeded) {
                // Past the handshake already (finish() passed on what was buffered): pass on the rest, in order.
                ctx.fireChannelRead(buf.retain());
            }
        } catch (NbdException e) {
            fail(ctx, e);
        } finally {
            buf.release();
        }
    }

    private void process(ChannelHandlerContext ctx) {
        while (state != State.DONE && state != State.TLS) {
            boolean progressed = switch (state) {
                case GREETING -> greeting(ctx);
                case STARTTLS_REPLY -> startTlsReply(ctx);
                case GO_REPLIES -> goReply(ctx);
                case EXPORT_NAME_REPLY -> exportNameReply(ctx);
                case TLS, DONE -> false;
            };
            if (!progressed) {
                return;
            }
        }
    }

    private boolean greeting(ChannelHandlerContext ctx) {
        if (in.readableBytes() < 18) {
            if (in.readableBytes() >= 16 && in.getLong(in.readerIndex() + 8) == OLDSTYLE_MAGIC) {
                throw new NbdException(uri + " speaks the oldstyle NBD handshake, which this client does not support;"
                        + " use a newstyle server (nbd-server 3.10 or later, qemu-nbd, nbdkit)");
            }
            return false;
        }
        long magic = in.readLong();
        long opt = in.readLong();
        if (magic != NBDMAGIC) {
            throw new NbdException(uri + " is not an NBD server (greeting 0x" + Long.toHexString(magic)
                    + "); check the host and port");
        }
        if (opt == OLDSTYLE_MAGIC) {
            throw new NbdException(uri + " speaks the oldstyle NBD handshake, which this client does not support");
        }
        if (opt != IHAVEOPT) {
            throw new NbdException(uri + " sent an unknown handshake (0x" + Long.toHexString(opt) + ")");
        }
        int serverFlags = in.readUnsignedShort();
        if ((serverFlags & FLAG_FIXED_NEWSTYLE) == 0) {
            throw new NbdException(uri + " does not speak the fixed newstyle handshake, which this client needs;"
                    + " use a server from this decade (nbd-server 3.x, qemu-nbd, nbdkit)");
        }
        noZeroes = (serverFlags & FLAG_NO_ZEROES) != 0;
        int clientFlags = FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0);
        ByteBuf out = ctx.alloc().buffer(4 + 16);
        out.writeInt(clientFlags);
        if (tls != null) {
            // TLS first: the export's name and everything after it go encrypted.
            out.writeLong(IHAVEOPT).writeInt(OPT_STARTTLS).writeInt(0);
            send(ctx, out);
            state = State.STARTTLS_REPLY;
        } else {
            send(ctx, out);
            sendGo(ctx);
        }
        return true;
    }

    private void send(ChannelHandlerContext ctx, ByteBuf out) {
        ctx.writeAndFlush(out).addListener(f -> {
            if (!f.isSuccess()) {
                fail(ctx, new NbdException("cannot send the handshake to " + uri + ": " + f.cause(), f.cause()));
            }
        });
    }

    private void sendGo(ChannelHandlerContext ctx) {
        // NBD_OPT_GO: export name, then the information requests.
        ByteBuf out = ctx.alloc().buffer(16 + 4 + exportName.length + 2 + 4);
        out.writeLong(IHAVEOPT).writeInt(OPT_GO).writeInt(4 + exportName.length + 2 + 4);
        out.writeInt(exportName.length).writeBytes(exportName);
        out.writeShort(2).writeShort(INFO_EXPORT).writeShort(INFO_BLOCK_SIZE);
        send(ctx, out);
        state = State.GO_REPLIES;
    }

    /**
     * The 20-byte header and data of the next option reply, once all of it is buffered (the reader index then past
     * it); null while more is needed.
     */
    private ByteBuf optionReply(int[] optionAndType) {
        if (in.readableBytes() < 20) {
            return null;
        }
        int start = in.readerIndex();
        long magic = in.getLong(start);
        long length = Integer.toUnsignedLong(in.getInt(start + 16));
        if (magic != OPTION_REPLY_MAGIC) {
            throw new NbdException(uri + " sent a malformed option reply (magic 0x" + Long.toHexString(magic) + ")");
        }
        if (length > MAX_OPTION_REPLY) {
            throw new NbdException(uri + " sent an option reply of " + length + " bytes (at most " + MAX_OPTION_REPLY
                    + " are accepted); refusing it");
        }
        if (in.readableBytes() < 20 + length) {
            return null;
        }
        if (++optionReplies > MAX_OPTION_REPLIES) {
            throw new NbdException(uri + " sent more than " + MAX_OPTION_REPLIES + " option replies; refusing it");
        }
        optionAndType[0] = in.getInt(start + 8);
        optionAndType[1] = in.getInt(start + 12);
        in.skipBytes(20);
        return in.readSlice((int) length);
    }

    private boolean startTlsReply(ChannelHandlerContext ctx) {
        int[] ot = new int[2];
        ByteBuf data = optionReply(ot);
        if (data == null) {
            return false;
        }
        if (ot[0] != OPT_STARTTLS) {
            throw new NbdException(uri + " answered option " + ot[0] + " while NBD_OPT_STARTTLS was asked");
        }
        if (ot[1] != REP_ACK) {
            if ((ot[1] & REP_FLAG_ERROR) == 0) {
                throw new NbdException(uri + " answered NBD_OPT_STARTTLS with " + replyName(ot[1]) + "; refusing it");
            }
            String server = printable(data.toString(StandardCharsets.UTF_8));
            throw new NbdException(
                    uri + " refused TLS (NBD_OPT_STARTTLS answered " + replyName(ot[1])
                            + (server.isEmpty() ? "" : ", server says: " + server)
                            + "). The URI asks for TLS, so the client"
                            + " does not go on in plain text: serve the export with TLS (qemu-nbd --object tls-creds-x509"
                            + " --tls-creds; nbd-server certfile, keyfile, cacertfile), or use nbd:// where plain text is"
                            + " acceptable [" + replyName(ot[1]) + "]",
                    ot[1],
                    null);
        }
        if (data.isReadable()) {
            throw new NbdException(uri + " sent " + data.readableBytes() + " bytes with its NBD_OPT_STARTTLS ack");
        }
        state = State.TLS;
        SslHandler ssl = tls.newHandler(ctx.alloc());
        // In front of this handler: from now on every byte either way goes through it.
        ctx.pipeline().addBefore(ctx.name(), "nbd-tls", ssl);
        ssl.handshakeFuture().addListener(f -> {
            if (state != State.TLS) {
                return;
            }
            if (f.isSuccess()) {
                try {
                    sendGo(ctx);
                    if (in != null && in.isReadable()) {
                        process(ctx); // replies that came, decrypted, before this listener ran
                    }
                } catch (NbdException e) {
                    fail(ctx, e);
                }
            } else {
                fail(ctx, tls.handshakeFailed(uri, f.cause()));
            }
        });
        return false;
    }

    private boolean goReply(ChannelHandlerContext ctx) {
        int[] ot = new int[2];
        ByteBuf data = optionReply(ot);
        if (data == null) {
            return false;
        }
        if (ot[0] != OPT_GO) {
            throw new NbdException(uri + " answered option " + ot[0] + " while NBD_OPT_GO was asked");
        }
        int type = ot[1];
        switch (type) {
            case REP_INFO -> info(data);
            case REP_ACK -> {
                if (size < 0) {
                    throw new NbdException(uri + " accepted the export without telling its size (no NBD_INFO_EXPORT)");
                }
                finish(ctx, true);
            }
            case REP_ERR_UNSUP -> {
                // An older server: choose the export the old way.
                ByteBuf out = ctx.alloc().buffer(16 + exportName.length);
                out.writeLong(IHAVEOPT)
                        .writeInt(OPT_EXPORT_NAME)
                        .writeInt(exportName.length)
                        .writeBytes(exportName);
                send(ctx, out);
                state = State.EXPORT_NAME_REPLY;
            }
            default -> {
                if ((type & REP_FLAG_ERROR) != 0) {
                    throw refusal(type, data.toString(StandardCharsets.UTF_8));
                }
                // An unknown non-error reply: ignored, as the protocol asks (and counted: MAX_OPTION_REPLIES).
            }
        }
        return true;
    }

    private void info(ByteBuf data) {
        if (data.readableBytes() < 2) {
            throw new NbdException(uri + " sent an empty NBD_REP_INFO");
        }
        int infoType = data.readUnsignedShort();
        switch (infoType) {
            case INFO_EXPORT -> {
                if (data.readableBytes() != 10) {
                    throw new NbdException(uri + " sent NBD_INFO_EXPORT of " + (data.readableBytes() + 2) + " bytes");
                }
                size = data.readLong();
                flags = data.readUnsignedShort();
                checkSize();
            }
            case INFO_BLOCK_SIZE -> {
                if (data.readableBytes() != 12) {
                    throw new NbdException(
                            uri + " sent NBD_INFO_BLOCK_SIZE of " + (data.readableBytes() + 2) + " bytes");
                }
                minBlock = data.readInt();
                prefBlock = data.readInt();
                maxBlock = data.readInt();
                if (minBlock < 1 || minBlock > 65536 || Integer.bitCount(minBlock) != 1) {
                    throw new NbdException(
                            uri + " announced a minimum block size of " + Integer.toUnsignedString(minBlock)
                                    + ", not a power of two up to 64 KiB; refusing the export");
                }
                if (prefBlock < minBlock || Integer.bitCount(prefBlock) != 1) {
                    throw new NbdException(
                            uri + " announced a preferred block size of " + Integer.toUnsignedString(prefBlock)
                                    + ", not a power of two of at least the minimum (" + minBlock
                                    + "); refusing the export");
                }
            }
            default -> {
                // NBD_INFO_NAME, NBD_INFO_DESCRIPTION and future ones: not needed.
            }
        }
    }

    private void checkSize() {
        if (size < 0 || size > maxExportSize) {
            throw new NbdException(uri + " announced an export of " + Long.toUnsignedString(size) + " bytes, more than"
                    + " the " + maxExportSize + " this client accepts (NbdOptions.maxExportSize); refusing it");
        }
    }

    /** The checks that need every piece of the export's info (they may come in any order). */
    private void checkExport() {
        checkSize();
        if (size % minBlock != 0) {
            throw new NbdException(uri + " announced an export of " + size + " bytes, not a multiple of its minimum"
                    + " block size " + minBlock + "; refusing it");
        }
        if (maxBlock != 0 && maxBlock != -1) {
            // 0: none stated; 0xffffffff: no limit but the export's size.
            long max = Integer.toUnsignedLong(maxBlock);
            long floor = Math.min(Math.max(MIN_MAX_BLOCK, minBlock), Math.max(size, minBlock));
            if (max < floor || max % minBlock != 0) {
                throw new NbdException(uri + " announced a maximum block size of " + max + " bytes (minimum "
                        + minBlock + "); this client needs at least " + floor + " and a multiple of the minimum, else"
                        + " every request would split into many; refusing the export");
            }
        }
    }

    private boolean exportNameReply(ChannelHandlerContext ctx) {
        int need = 10 + (noZeroes ? 0 : 124);
        if (in.readableBytes() < need) {
            return false;
        }
        size = in.readLong();
        flags = in.readUnsignedShort();
        in.skipBytes(need - 10);
        finish(ctx, false);
        return true;
    }

    /** The server's text as it may go into messages and logs: printable, and at most 200 characters. */
    static String printable(String s) {
        StringBuilder b = new StringBuilder(Math.min(s.length(), 200));
        for (int i = 0; i < s.length() && b.length() < 200; i++) {
            char c = s.charAt(i);
            b.append(Character.isISOControl(c) || Character.getType(c) == Character.FORMAT ? '?' : c);
        }
        return (s.length() > 200 ? b + "..." : b.toString()).strip();
    }

    private NbdException refusal(int type, String message) {
        String name = exportName.length == 0
                ? "the default export"
                : "export '" + printable(new String(exportName, StandardCharsets.UTF_8)) + "'";
        String text = printable(message);
        String server = text.isEmpty() ? "" : " (server says: " + text + ")";
        String what = switch (type) {
            case REP_ERR_UNKNOWN ->
                uri + " has no " + name + server
                        + "; check the export name in the URI (nbd://HOST:PORT/EXPORT), e.g. with nbd-client -l or"
                        + " nbdinfo --list";
            case REP_ERR_POLICY ->
                uri + " refused " + name + " by its policy" + server
                        + "; check the server's access rules (allow list, connection limits, client certificates)";
            case REP_ERR_TLS_REQD ->
                uri + " requires TLS for " + name + server
                        + "; connect with nbds:// (or nbds+unix://) and the server's CA (docs/security.md, NBD over TLS)";
            case REP_ERR_SHUTDOWN -> uri + " is shutting down" + server + "; try again when it is back";
            case REP_ERR_UNSUP -> uri + " does not support NBD_OPT_GO" + server;
            case REP_ERR_BLOCK_SIZE_REQD -> uri + " requires block size negotiation for " + name + server;
            default -> uri + " refused " + name + " with " + replyName(type) + server;
        };
        return new NbdException(what + " [" + replyName(type) + "]", type, null);
    }

    private void finish(ChannelHandlerContext ctx, boolean viaGo) {
        checkExport();
        state = State.DONE;
        succeeded = true;
        ExportInfo info = new ExportInfo(size, flags, minBlock, prefBlock, maxBlock, viaGo);
        done.accept(info, null);
        if (in.isReadable()) {
            // A well-behaved server sends nothing unasked after the handshake; pass on whatever came.
            ctx.fireChannelRead(in.readRetainedSlice(in.readableBytes()));
        }
        ctx.pipeline().remove(this);
    }

    /** Fails the handshake (once) and closes the channel. */
    void fail(ChannelHandlerContext ctx, Throwable error) {
        if (state == State.DONE) {
            return;
        }
        state = State.DONE;
        NbdException e = error instanceof NbdException n
                ? n
                : new NbdException("the handshake with " + uri + " failed: " + error, error);
        ctx.close();
        done.accept(null, e);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (state != State.DONE) {
            String why = switch (state) {
                case GREETING ->
                    uri + " closed the connection before its greeting; is it an NBD server, and does it"
                            + " accept more connections?";
                case STARTTLS_REPLY ->
                    uri + " closed the connection when asked for TLS (NBD_OPT_STARTTLS); the URI"
                            + " asks for TLS, so the client does not go on in plain text: check that the server serves TLS";
                case TLS ->
                    uri + " closed the connection during the TLS handshake; check that it has TLS"
                            + " credentials, and whether it wants a client certificate this client does not have";
                case GO_REPLIES ->
                    uri + " closed the connection during the handshake"
                            + (tls == null
                                    ? ""
                                    : " (after" + " TLS: does it want a client certificate, or another one?)");
                case EXPORT_NAME_REPLY ->
                    uri + " closed the connection after NBD_OPT_EXPORT_NAME: it has no export "
                            + (exportName.length == 0
                                    ? "by default"
                                    : "named '" + printable(new String(exportName, StandardCharsets.UTF_8)) + "'")
                            + " (or refused it); check the export name in the URI (nbd://HOST:PORT/EXPORT)";
                case DONE -> "";
            };
            NbdException e = new NbdException(why, state == State.EXPORT_NAME_REPLY ? REP_ERR_UNKNOWN : 0, null);
            fail(ctx, e);
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (state != State.DONE) {
            boolean tlsFailed = tls != null && (state == State.TLS || NbdTls.isTlsFailure(cause));
            fail(
                    ctx,
                    tlsFailed
                            ? tls.handshakeFailed(uri, cause)
                            : new NbdException("the handshake with " + uri + " failed: " + cause, cause));
        } else if (succeeded) {
            ctx.fireExceptionCaught(cause);
        }
        // Else it failed already (the SslHandler fails its handshake future, then fires the same error): reported.
    }

    /** For debugging a server: the bytes not yet parsed. */
    @Override
    public String toString() {
        return "Handshake[" + uri + ", " + state + (in == null ? "" : ", pending " + ByteBufUtil.hexDump(in)) + "]";
    }
}

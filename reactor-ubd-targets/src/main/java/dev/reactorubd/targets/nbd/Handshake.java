package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.nio.charset.StandardCharsets;
import java.util.function.BiConsumer;

/**
 * The client side of the fixed newstyle handshake, as the first handler of a new channel: reads the server's greeting,
 * sends the client flags, then NBD_OPT_GO for the export (asking for NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE), falling
 * back to NBD_OPT_EXPORT_NAME when the server answers NBD_REP_ERR_UNSUP. Structured replies are not negotiated.
 *
 * <p>Runs on the channel's loop. Reports exactly once: {@code done} gets the export's info (the handler has then left
 * the pipeline, and any bytes past the handshake were passed on) or an {@link NbdException} (the channel is then
 * closed).
 */
final class Handshake extends ChannelInboundHandlerAdapter {
    private static final int MAX_OPTION_REPLY = 64 * 1024;

    private enum State { GREETING, GO_REPLIES, EXPORT_NAME_REPLY, DONE }

    private final String uri;
    private final byte[] exportName;
    private final BiConsumer<ExportInfo, Throwable> done;
    private ByteBuf in;
    private State state = State.GREETING;
    private boolean noZeroes;
    private long size = -1;
    private int flags;
    private int minBlock = 1;
    private int prefBlock = 4096;
    private int maxBlock;

    Handshake(String uri, String exportName, BiConsumer<ExportInfo, Throwable> done) {
        this.uri = uri;
        this.exportName = exportName.getBytes(StandardCharsets.UTF_8);
        this.done = done;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        in = ctx.alloc().heapBuffer(256);
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        if (in != null) {
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
            in.writeBytes(buf);
        } finally {
            buf.release();
        }
        try {
            process(ctx);
        } catch (NbdException e) {
            fail(ctx, e);
        }
    }

    private void process(ChannelHandlerContext ctx) {
        while (state != State.DONE) {
            boolean progressed = switch (state) {
                case GREETING -> greeting(ctx);
                case GO_REPLIES -> goReply(ctx);
                case EXPORT_NAME_REPLY -> exportNameReply(ctx);
                case DONE -> false;
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
        ByteBuf out = ctx.alloc().buffer(4 + 16 + 4 + exportName.length + 2 + 4);
        out.writeInt(clientFlags);
        // NBD_OPT_GO: export name, then the information requests.
        out.writeLong(IHAVEOPT).writeInt(OPT_GO).writeInt(4 + exportName.length + 2 + 4);
        out.writeInt(exportName.length).writeBytes(exportName);
        out.writeShort(2).writeShort(INFO_EXPORT).writeShort(INFO_BLOCK_SIZE);
        ctx.writeAndFlush(out).addListener(f -> {
            if (!f.isSuccess()) {
                fail(ctx, new NbdException("cannot send the handshake to " + uri + ": " + f.cause(), f.cause()));
            }
        });
        state = State.GO_REPLIES;
        return true;
    }

    private boolean goReply(ChannelHandlerContext ctx) {
        if (in.readableBytes() < 20) {
            return false;
        }
        int start = in.readerIndex();
        long magic = in.getLong(start);
        int option = in.getInt(start + 8);
        int type = in.getInt(start + 12);
        long length = Integer.toUnsignedLong(in.getInt(start + 16));
        if (magic != OPTION_REPLY_MAGIC) {
            throw new NbdException(uri + " sent a malformed option reply (magic 0x" + Long.toHexString(magic) + ")");
        }
        if (length > MAX_OPTION_REPLY) {
            throw new NbdException(uri + " sent an option reply of " + length + " bytes; refusing it");
        }
        if (in.readableBytes() < 20 + length) {
            return false;
        }
        in.skipBytes(20);
        ByteBuf data = in.readSlice((int) length);
        if (option != OPT_GO) {
            throw new NbdException(uri + " answered option " + option + " while NBD_OPT_GO was asked");
        }
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
                out.writeLong(IHAVEOPT).writeInt(OPT_EXPORT_NAME).writeInt(exportName.length).writeBytes(exportName);
                ctx.writeAndFlush(out);
                state = State.EXPORT_NAME_REPLY;
            }
            default -> {
                if ((type & REP_FLAG_ERROR) != 0) {
                    throw refusal(type, data.toString(StandardCharsets.UTF_8));
                }
                // An unknown non-error reply: ignored, as the protocol asks.
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
                if (size < 0) {
                    throw new NbdException(uri + " announced an export size beyond 2^63 bytes");
                }
            }
            case INFO_BLOCK_SIZE -> {
                if (data.readableBytes() != 12) {
                    throw new NbdException(uri + " sent NBD_INFO_BLOCK_SIZE of " + (data.readableBytes() + 2)
                            + " bytes");
                }
                minBlock = data.readInt();
                prefBlock = data.readInt();
                maxBlock = data.readInt();
                if (minBlock < 1 || minBlock > 65536 || Integer.bitCount(minBlock) != 1) {
                    throw new NbdException(uri + " announced a minimum block size of " + minBlock
                            + ", not a power of two up to 64 KiB");
                }
            }
            default -> {
                // NBD_INFO_NAME, NBD_INFO_DESCRIPTION and future ones: not needed.
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
        if (size < 0) {
            throw new NbdException(uri + " announced an export size beyond 2^63 bytes");
        }
        finish(ctx, false);
        return true;
    }

    private NbdException refusal(int type, String message) {
        String name = exportName.length == 0 ? "the default export" : "export '"
                + new String(exportName, StandardCharsets.UTF_8) + "'";
        String server = message.isBlank() ? "" : " (server says: " + message.strip() + ")";
        String what = switch (type) {
            case REP_ERR_UNKNOWN -> uri + " has no " + name + server
                    + "; check the export name in the URI (nbd://HOST:PORT/EXPORT), e.g. with nbd-client -l or"
                    + " nbdinfo --list";
            case REP_ERR_POLICY -> uri + " refused " + name + " by its policy" + server
                    + "; check the server's access rules (allow list, connection limits)";
            case REP_ERR_TLS_REQD -> uri + " requires TLS for " + name + server
                    + ", which this client does not support; serve the export without TLS";
            case REP_ERR_SHUTDOWN -> uri + " is shutting down" + server + "; try again when it is back";
            case REP_ERR_UNSUP -> uri + " does not support NBD_OPT_GO" + server;
            case REP_ERR_BLOCK_SIZE_REQD -> uri + " requires block size negotiation for " + name + server;
            case REP_ERR_PLATFORM, REP_ERR_INVALID, REP_ERR_TOO_BIG -> uri + " refused " + name + " with "
                    + replyName(type) + server;
            default -> uri + " refused " + name + " with " + replyName(type) + server;
        };
        return new NbdException(what + " [" + replyName(type) + "]", type, null);
    }

    private void finish(ChannelHandlerContext ctx, boolean viaGo) {
        state = State.DONE;
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
        NbdException e = error instanceof NbdException n ? n
                : new NbdException("the handshake with " + uri + " failed: " + error, error);
        ctx.close();
        done.accept(null, e);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (state != State.DONE) {
            String why = switch (state) {
                case GREETING -> uri + " closed the connection before its greeting; is it an NBD server, and does it"
                        + " accept more connections?";
                case GO_REPLIES -> uri + " closed the connection during the handshake";
                case EXPORT_NAME_REPLY -> uri + " closed the connection after NBD_OPT_EXPORT_NAME: it has no export "
                        + (exportName.length == 0 ? "by default" : "named '"
                        + new String(exportName, StandardCharsets.UTF_8) + "'")
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
            fail(ctx, new NbdException("the handshake with " + uri + " failed: " + cause, cause));
        } else {
            ctx.fireExceptionCaught(cause);
        }
    }

    /** For debugging a server: the bytes not yet parsed. */
    @Override
    public String toString() {
        return "Handshake[" + uri + ", " + state + (in == null ? "" : ", pending " + ByteBufUtil.hexDump(in)) + "]";
    }
}

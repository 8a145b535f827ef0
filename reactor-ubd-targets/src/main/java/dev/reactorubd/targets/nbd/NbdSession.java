package dev.reactorubd.targets.nbd;

import static dev.reactorubd.targets.nbd.NbdProtocol.*;

import dev.reactorubd.UbdIoException;
import dev.reactorubd.uring.LoopIo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.unix.UnixChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.collection.LongObjectHashMap;
import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One channel of an {@link NbdConnection} past its handshake: writes requests and decodes simple replies. Its reply
 * decoder reads a header, then (for a READ that succeeded) the READ's payload, then the next header; once
 * {@link #gone} it decodes nothing more. A READ's payload is handed on as a retained slice of the inbound buffer when
 * the buffer holds all of it, else gathered into one direct buffer. Used on the connection's loop only.
 */
final class NbdSession extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(NbdSession.class);

    /** What a session tells its connection, on the connection's loop. */
    interface Events {
        /** The server answered {@code c} with success; {@code readData} (a READ's payload, else null) is the receiver's. */
        void answered(NbdCommand c, ByteBuf readData);

        /** The server answered {@code c} with an error. */
        void refused(NbdCommand c, UbdIoException error);

        /** The session ended (the channel closed, a protocol error, a failed write); called again is harmless. */
        void lost(NbdSession s, String reason);
    }

    final Channel channel;
    final ExportInfo info;
    /** Requests sent on this session and not answered yet, by cookie. */
    final LongObjectHashMap<NbdCommand> inFlight = new LongObjectHashMap<>();
    /** Writes this session's requests when the connection has a loop registration, else null (the channel does). */
    final RingWriter writer;

    private final String label;
    private final Events events;
    private final ByteBuf header = Unpooled.buffer(REPLY_HEADER, REPLY_HEADER);
    private final Runnable flushTask = this::flushNow;
    private NbdCommand payloadFor;
    private int payloadRemaining;
    private ByteBuf assembly;
    private boolean flushScheduled;
    private String closeReason;
    boolean gone;

    /**
     * @param ring a loop registration to write through instead of the channel (see {@link RingWriter}), or null; used
     *             only for a channel with a file descriptor
     */
    NbdSession(String label, Channel channel, ExportInfo info, LoopIo ring, Events events) {
        this.label = label;
        this.channel = channel;
        this.info = info;
        this.events = events;
        if (ring != null && channel instanceof UnixChannel u) {
            writer = new RingWriter(ring, u.fd().intValue(), reason -> events.lost(this, reason));
        } else {
            writer = null;
        }
    }

    /** Whether WRITEs on this session may carry a registered buffer ({@link NbdCommand#bufferIndex}). */
    boolean canSendRegistered() {
        return writer != null;
    }

    /**
     * Writes {@code c}'s request (header, and a WRITE's payload) with the cookie it was given; one flush for every
     * request sent in a loop turn. The command keeps its own reference to its payload, for a resend.
     */
    void send(NbdCommand c) {
        ByteBuf h = requestHeader(c.flags, c.type, c.cookie, c.offset, c.length);
        if (writer != null) {
            writer.write(h, null);
            if (c.type == CMD_WRITE) {
                if (c.bufferIndex >= 0) {
                    writer.writeRegistered(c.bufferIndex, c.bufferOffset, c.length);
                } else {
                    writer.write(c.data.retainedDuplicate(), null);
                }
            }
            return;
        }
        channel.write(h, channel.voidPromise());
        if (c.type == CMD_WRITE) {
            channel.write(c.data.retainedDuplicate(), channel.voidPromise());
        }
        if (!flushScheduled) {
            flushScheduled = true;
            channel.eventLoop().execute(flushTask);
        }
    }

    /** Sends NBD_CMD_DISC, then closes the channel once it is written. */
    void disconnect(long cookie) {
        ByteBuf h = requestHeader(0, CMD_DISC, cookie, 0, 0);
        if (writer != null) {
            writer.write(h, channel::close);
        } else {
            channel.writeAndFlush(h).addListener(ChannelFutureListener.CLOSE);
        }
    }

    private ByteBuf requestHeader(int flags, int type, long cookie, long offset, int length) {
        ByteBuf h = channel.alloc().directBuffer(REQUEST_HEADER, REQUEST_HEADER);
        return h.writeInt(REQUEST_MAGIC)
                .writeShort(flags)
                .writeShort(type)
                .writeLong(cookie)
                .writeLong(offset)
                .writeInt(length);
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
            events.lost(this, e.getMessage());
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
                    events.answered(c, in.readRetainedSlice(n));
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
                        events.answered(c, data);
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
            events.refused(
                    c,
                    new UbdIoException(
                            NbdProtocol.errno(error),
                            "nbd " + c + " on " + label + ": the server answered " + errorName(error)));
        } else if (c.type == CMD_READ && c.length > 0) {
            payloadFor = c;
            payloadRemaining = c.length;
        } else {
            events.answered(c, null);
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        events.lost(this, closeReason != null ? closeReason : "the server closed the connection");
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
        events.lost(this, closeReason);
    }
}

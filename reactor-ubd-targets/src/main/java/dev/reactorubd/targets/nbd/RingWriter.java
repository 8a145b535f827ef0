package dev.reactorubd.targets.nbd;

import dev.reactorubd.Errno;
import dev.reactorubd.io.Buffers;
import dev.reactorubd.uring.IoUringAbi;
import dev.reactorubd.uring.LoopIo;
import dev.reactorubd.uring.Sqe;
import io.netty.buffer.ByteBuf;
import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * Writes one session's requests to its socket with io_uring operations of its own, on the connection's loop, in place
 * of the Netty channel's writes: what lets a WRITE's payload go to the socket straight from the ublk request's pages,
 * registered in the loop ring's buffer table ({@code IORING_OP_WRITE_FIXED}), which a channel cannot name. The channel
 * still reads the replies; once a session has a writer, every byte it sends goes through it, so that nothing
 * overtakes.
 *
 * <h2>Order</h2>
 * Pieces (a request's header, its payload) go in the order they were given. What one loop turn gives is sent as one
 * chain of linked operations ({@code IOSQE_IO_LINK}), so one {@code io_uring_enter} carries them, and each starts only
 * once the one before it was sent in full. Buffers are sent with {@code IORING_OP_SEND} and {@code MSG_WAITALL} (the
 * kernel finishes a short send itself); a registered payload with {@code WRITE_FIXED}, which may fall short: the
 * kernel then cancels the rest of the chain, and once every operation of the chain is back the rest goes again, from
 * the first byte not sent. Only one chain is in flight at a time.
 *
 * <h2>Failure</h2>
 * Any other error (the peer is gone: EPIPE, ECONNRESET) is the session's end: {@code onFailure} is called once with
 * the reason, and the writer closes. Buffers are released once the kernel is done with them, or on close for those
 * not sent. On the loop only.
 */
final class RingWriter {
    /** Operations in one chain at most. */
    private static final int MAX_CHAIN = 64;

    private static final int SEND_FLAGS = IoUringAbi.MSG_WAITALL | IoUringAbi.MSG_NOSIGNAL;

    private final LoopIo io;
    private final int fd;
    private final Consumer<String> onFailure;
    private final ArrayDeque<Piece> pending = new ArrayDeque<>();
    private final ArrayDeque<Piece> chain = new ArrayDeque<>();
    private final Runnable flushTask = this::flush;
    private int outstanding;
    /** Pieces sent again, from where they stopped, after a chain fell short: for tests and debugging. */
    private long resent;

    private boolean flushScheduled;
    private boolean closed;
    /** Whether the loop registration closes once the last operation is back. */
    private boolean closeIo;

    /** One contiguous run of bytes to send: a buffer's, or a part of a registered buffer. */
    private final class Piece implements LoopIo.Completion {
        /** The bytes, owned here; null for a registered buffer. */
        private ByteBuf buf;

        private final long address;
        private final int length;
        private final int bufIndex;
        private final Runnable afterSent;
        private int sent;

        Piece(ByteBuf buf, long address, int length, int bufIndex, Runnable afterSent) {
            this.buf = buf;
            this.address = address;
            this.length = length;
            this.bufIndex = bufIndex;
            this.afterSent = afterSent;
        }

        void release() {
            if (buf != null) {
                buf.release();
                buf = null;
            }
        }

        @Override
        public void complete(int res) {
            completed(this, res);
        }
    }

    RingWriter(LoopIo io, int fd, Consumer<String> onFailure) {
        this.io = io;
        this.fd = fd;
        this.onFailure = onFailure;
    }

    /**
     * Sends {@code buf}'s readable bytes after what was given before; takes ownership of {@code buf}, which must be
     * direct. A buffer whose bytes are not at one native address is copied into one first.
     *
     * @param buf the bytes
     * @param afterSent run once every byte of it was sent, or null
     */
    void write(ByteBuf buf, Runnable afterSent) {
        if (closed || !buf.isReadable()) {
            buf.release();
            return;
        }
        ByteBuf b = buf;
        if (!Buffers.isContiguousDirect(buf)) {
            b = buf.alloc().directBuffer(buf.readableBytes()).writeBytes(buf);
            buf.release();
        }
        pending.add(new Piece(b, Buffers.address(b, b.readerIndex()), b.readableBytes(), -1, afterSent));
        scheduleFlush();
    }

    /**
     * Sends {@code length} bytes of the loop ring's registered buffer {@code bufIndex} from {@code from}, after what
     * was given before. The buffer must stay registered until they are sent or the session ends.
     *
     * @param bufIndex the slot of the ring's buffer table
     * @param from the first byte: its offset in the buffer for pages the kernel registered (a ublk request's), its
     *             address for memory of the application's
     * @param length the bytes to send
     */
    void writeRegistered(int bufIndex, long from, int length) {
        if (closed || length == 0) {
            return;
        }
        pending.add(new Piece(null, from, length, bufIndex, null));
        scheduleFlush();
    }

    /** One chain for everything given in this loop turn. */
    private void scheduleFlush() {
        if (!flushScheduled) {
            flushScheduled = true;
            io.loop().execute(flushTask);
        }
    }

    /** Sends what is pending as one chain, unless a chain is still in flight (its end sends the rest). */
    private void flush() {
        flushScheduled = false;
        if (closed || outstanding > 0 || pending.isEmpty()) {
            return;
        }
        // Linked only where the whole chain fits in Netty's queue: a flush inside it would split it.
        int n = Math.min(Math.min(pending.size(), MAX_CHAIN), Math.max(1, io.room()));
        outstanding = n;
        for (int i = 0; i < n; i++) {
            Piece p = pending.poll();
            chain.add(p);
            boolean link = i < n - 1;
            if (p.bufIndex >= 0) {
                io.submit(Sqe.writeFixed(fd, 0L, p.address + p.sent, p.length - p.sent, p.bufIndex), link, p);
            } else {
                io.submit(Sqe.send(fd, p.address + p.sent, p.length - p.sent, SEND_FLAGS), link, p);
            }
        }
    }

    private void completed(Piece p, int res) {
        outstanding--;
        if (res > 0) {
            p.sent += res;
        } else if (res != -Errno.ECANCELED && res != -Errno.EINTR && res != -Errno.EAGAIN) {
            fail(res == 0 ? "the socket took no byte" : "sending to the server failed: " + Errno.describe(res));
        }
        if (outstanding > 0) {
            return;
        }
        // The chain is back: what was sent in full is done (a prefix of it), the rest goes again, in order.
        while (!chain.isEmpty() && chain.peekFirst().sent == chain.peekFirst().length) {
            Piece done = chain.pollFirst();
            done.release();
            if (done.afterSent != null && !closed) {
                done.afterSent.run();
            }
        }
        while (!chain.isEmpty()) {
            Piece again = chain.pollLast();
            if (closed) {
                again.release();
            } else {
                pending.addFirst(again);
                resent++;
            }
        }
        if (closed) {
            if (closeIo) {
                io.close();
            }
            return;
        }
        flush();
    }

    private void fail(String reason) {
        if (closed) {
            return;
        }
        close();
        onFailure.accept(reason);
    }

    /**
     * Sends nothing more: pieces not sent yet are dropped, and those in flight are cancelled (a send to a server that
     * stopped reading would otherwise wait for ever, holding the request pages it names, whose request cannot be
     * committed before it is back) and released when the kernel gives them back. Idempotent.
     */
    void close() {
        if (closed) {
            return;
        }
        closed = true;
        Piece p;
        while ((p = pending.poll()) != null) {
            p.release();
        }
        for (Piece inFlight : chain) {
            io.cancel(inFlight);
        }
    }

    /**
     * Closes, and closes the loop registration too once no operation is in flight (an operation cancelled by closing
     * it would never give its buffer back).
     */
    void closeWithIo() {
        close();
        closeIo = true;
        if (outstanding == 0) {
            io.close();
        }
    }

    /** {@return pieces sent again after a chain fell short, so far} */
    long resentCount() {
        return resent;
    }

    /** {@return whether nothing is waiting or in flight} */
    boolean isIdle() {
        return outstanding == 0 && pending.isEmpty();
    }
}

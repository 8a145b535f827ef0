package dev.reactorubd.targets.nbd;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small NBD server for the cases real servers cannot be made to play: one that completes the handshake and then
 * never answers, one without NBD_OPT_GO, one that answers every request with an error, one whose export changes
 * size. A network peer on 127.0.0.1 on plain threads (blocking sockets, off every event loop); memory-backed.
 */
final class FakeNbdServer implements AutoCloseable {
    enum Mode {
        /** Answers requests from memory. */
        SERVE,
        /** Reads requests and never answers. */
        SILENT,
        /** Answers every request with {@link #error}. */
        FAIL,
        /** Hands every request to {@link #replier}, which writes whatever it likes (a hostile server). */
        SCRIPTED
    }

    /** Writes the reply to one request in {@link Mode#SCRIPTED}; throwing ends the connection. */
    @FunctionalInterface
    interface Replier {
        /**
         * @param s the connection (to close it abruptly)
         * @param out where the reply goes; flushed after the call
         * @param type the request's command; its cookie, offset and length follow
         */
        void reply(Socket s, DataOutputStream out, int type, long cookie, long offset, int length) throws IOException;
    }

    private final ServerSocket server;
    private final List<Socket> clients = new CopyOnWriteArrayList<>();
    private final byte[] disk;
    final AtomicInteger connections = new AtomicInteger();
    final AtomicInteger requests = new AtomicInteger();
    /** The WRITE requests among {@link #requests}. */
    final AtomicInteger writes = new AtomicInteger();

    volatile Mode mode = Mode.SERVE;
    volatile boolean supportGo = true;
    /** Whether a new connection gets the handshake; false: it is accepted and never spoken to (a stalled server). */
    volatile boolean greets = true;

    volatile long size;
    volatile int flags = NbdProtocol.TF_HAS_FLAGS | NbdProtocol.TF_SEND_FLUSH;
    volatile int error = 28; // ENOSPC
    /**
     * Unique per server: a client reconnecting to a port that another test's server took over after this one closed
     * (test JVMs run side by side on one machine) must fail its handshake there, not reach that server's export.
     */
    volatile String exportName = "fake-" + Long.toHexString(System.nanoTime());

    volatile int maxBlock;
    /** When positive, replies go out in pieces of this many bytes, each flushed on its own, 1 ms apart. */
    volatile int dribble;

    volatile Replier replier;

    FakeNbdServer(int size) throws IOException {
        this.disk = new byte[size];
        this.size = size;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::acceptLoop, "fake-nbd-accept");
        t.setDaemon(true);
        t.start();
    }

    int port() {
        return server.getLocalPort();
    }

    String uri() {
        return "nbd://127.0.0.1:" + port() + "/" + exportName;
    }

    /** Closes every client connection (the server keeps listening). */
    void dropAll() {
        for (Socket s : clients) {
            try {
                // A FIN now: close() alone may wait for the thread blocked reading this socket.
                s.shutdownOutput();
            } catch (IOException e) {
                // already closed
            }
            try {
                s.close();
            } catch (IOException e) {
                // closing anyway
            }
        }
        clients.clear();
    }

    @Override
    public void close() throws IOException {
        server.close();
        dropAll();
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket s = server.accept();
                s.setTcpNoDelay(true);
                clients.add(s);
                connections.incrementAndGet();
                Thread t = new Thread(() -> serve(s), "fake-nbd-client");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket s) {
        try (s) {
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            if (!greets) {
                while (in.read() >= 0) {
                    // held open, never answered, until the client or dropAll closes it
                }
                return;
            }
            if (!handshake(in, out)) {
                return;
            }
            while (true) {
                int magic = in.readInt();
                if (magic != NbdProtocol.REQUEST_MAGIC) {
                    return;
                }
                in.readUnsignedShort();
                int type = in.readUnsignedShort();
                long cookie = in.readLong();
                long offset = in.readLong();
                int length = in.readInt();
                byte[] payload = null;
                if (type == NbdProtocol.CMD_WRITE) {
                    payload = new byte[length];
                    in.readFully(payload);
                }
                if (type == NbdProtocol.CMD_DISC) {
                    return;
                }
                requests.incrementAndGet();
                if (type == NbdProtocol.CMD_WRITE) {
                    writes.incrementAndGet();
                }
                Mode m = mode;
                if (m == Mode.SILENT) {
                    continue;
                }
                if (m == Mode.SCRIPTED) {
                    replier.reply(s, out, type, cookie, offset, length);
                    out.flush();
                    continue;
                }
                ByteArrayOutputStream reply = new ByteArrayOutputStream();
                DataOutputStream r = new DataOutputStream(reply);
                r.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
                if (m == Mode.FAIL) {
                    r.writeInt(error);
                    r.writeLong(cookie);
                } else {
                    r.writeInt(0);
                    r.writeLong(cookie);
                    synchronized (disk) {
                        if (type == NbdProtocol.CMD_READ) {
                            r.write(disk, (int) offset, length);
                        } else if (type == NbdProtocol.CMD_WRITE) {
                            System.arraycopy(payload, 0, disk, (int) offset, length);
                        }
                    }
                }
                byte[] bytes = reply.toByteArray();
                int piece = dribble > 0 ? dribble : bytes.length;
                for (int at = 0; at < bytes.length; at += piece) {
                    out.write(bytes, at, Math.min(piece, bytes.length - at));
                    out.flush();
                    if (dribble > 0) {
                        NbdServers.sleep(1);
                    }
                }
            }
        } catch (IOException e) {
            // the client or the test closed the connection
        }
    }

    private boolean handshake(DataInputStream in, DataOutputStream out) throws IOException {
        out.writeLong(NbdProtocol.NBDMAGIC);
        out.writeLong(NbdProtocol.IHAVEOPT);
        out.writeShort(NbdProtocol.FLAG_FIXED_NEWSTYLE | NbdProtocol.FLAG_NO_ZEROES);
        out.flush();
        int clientFlags = in.readInt();
        boolean noZeroes = (clientFlags & NbdProtocol.FLAG_C_NO_ZEROES) != 0;
        while (true) {
            if (in.readLong() != NbdProtocol.IHAVEOPT) {
                return false;
            }
            int option = in.readInt();
            byte[] data = new byte[in.readInt()];
            in.readFully(data);
            if (option == NbdProtocol.OPT_EXPORT_NAME) {
                if (!new String(data, StandardCharsets.UTF_8).equals(exportName)) {
                    return false;
                }
                out.writeLong(size);
                out.writeShort(flags);
                if (!noZeroes) {
                    out.write(new byte[124]);
                }
                out.flush();
                return true;
            }
            if (option == NbdProtocol.OPT_GO && supportGo) {
                ByteBuffer b = ByteBuffer.wrap(data);
                byte[] name = new byte[b.getInt()];
                b.get(name);
                if (!new String(name, StandardCharsets.UTF_8).equals(exportName)) {
                    optionReply(out, option, NbdProtocol.REP_ERR_UNKNOWN, "no such export".getBytes());
                    continue;
                }
                ByteBuffer info = ByteBuffer.allocate(12);
                info.putShort((short) NbdProtocol.INFO_EXPORT).putLong(size).putShort((short) flags);
                optionReply(out, option, NbdProtocol.REP_INFO, info.array());
                if (maxBlock > 0) {
                    ByteBuffer bs = ByteBuffer.allocate(14);
                    bs.putShort((short) NbdProtocol.INFO_BLOCK_SIZE)
                            .putInt(512)
                            .putInt(4096)
                            .putInt(maxBlock);
                    optionReply(out, option, NbdProtocol.REP_INFO, bs.array());
                }
                optionReply(out, option, NbdProtocol.REP_ACK, new byte[0]);
                return true;
            }
            optionReply(out, option, NbdProtocol.REP_ERR_UNSUP, new byte[0]);
        }
    }

    private static void optionReply(DataOutputStream out, int option, int type, byte[] data) throws IOException {
        out.writeLong(NbdProtocol.OPTION_REPLY_MAGIC);
        out.writeInt(option);
        out.writeInt(type);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /** A copy of the bytes at {@code offset}. */
    byte[] bytes(int offset, int length) {
        synchronized (disk) {
            return Arrays.copyOfRange(disk, offset, offset + length);
        }
    }
}

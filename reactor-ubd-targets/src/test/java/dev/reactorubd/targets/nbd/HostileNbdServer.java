package dev.reactorubd.targets.nbd;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A server on 127.0.0.1 that runs a script of raw bytes on every connection: the handshakes no real server sends
 * (huge or endless option replies, absurd export and block sizes, a refused or abused STARTTLS). Plain threads and
 * blocking sockets, off every event loop.
 */
final class HostileNbdServer implements AutoCloseable {
    /** What the server does on one connection; throwing (or returning) ends it. */
    @FunctionalInterface
    interface Script {
        void run(DataInputStream in, DataOutputStream out) throws IOException;
    }

    private final ServerSocket server;
    private final List<Socket> clients = new CopyOnWriteArrayList<>();
    private final Script script;
    final AtomicInteger connections = new AtomicInteger();

    HostileNbdServer(Script script) throws IOException {
        this.script = script;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::acceptLoop, "hostile-nbd-accept");
        t.setDaemon(true);
        t.start();
    }

    String uri(String scheme) {
        return scheme + "://127.0.0.1:" + server.getLocalPort() + "/x";
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket s = server.accept();
                clients.add(s);
                connections.incrementAndGet();
                Thread t = new Thread(
                        () -> {
                            try (s) {
                                DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
                                DataOutputStream out =
                                        new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
                                script.run(in, out);
                                out.flush();
                            } catch (IOException e) {
                                // the client closed the connection: what a refused server should see
                            }
                        },
                        "hostile-nbd-client");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket s : clients) {
            s.close();
        }
    }

    // ------------------------------------------------------------------------------------------------ script steps

    /** The fixed newstyle greeting, then reads the client's flags. */
    static void greet(DataInputStream in, DataOutputStream out) throws IOException {
        out.writeLong(NbdProtocol.NBDMAGIC);
        out.writeLong(NbdProtocol.IHAVEOPT);
        out.writeShort(NbdProtocol.FLAG_FIXED_NEWSTYLE | NbdProtocol.FLAG_NO_ZEROES);
        out.flush();
        in.readInt();
    }

    /** Reads one option; returns its number (its data is skipped). */
    static int readOption(DataInputStream in) throws IOException {
        if (in.readLong() != NbdProtocol.IHAVEOPT) {
            throw new IOException("not an option");
        }
        int option = in.readInt();
        in.skipNBytes(in.readInt());
        return option;
    }

    static void optionReply(DataOutputStream out, int option, int type, byte[] data) throws IOException {
        out.writeLong(NbdProtocol.OPTION_REPLY_MAGIC);
        out.writeInt(option);
        out.writeInt(type);
        out.writeInt(data.length);
        out.write(data);
    }

    static byte[] exportInfo(long size, int flags) {
        return ByteBuffer.allocate(12)
                .putShort((short) NbdProtocol.INFO_EXPORT)
                .putLong(size)
                .putShort((short) flags)
                .array();
    }

    static byte[] blockSizes(int min, int pref, int max) {
        return ByteBuffer.allocate(14)
                .putShort((short) NbdProtocol.INFO_BLOCK_SIZE)
                .putInt(min)
                .putInt(pref)
                .putInt(max)
                .array();
    }

    /** Answers NBD_OPT_GO with these replies (each INFO data), then ACK, then serves zeros to every READ. */
    static Script go(long size, byte[]... infos) {
        return (in, out) -> {
            greet(in, out);
            int option = readOption(in);
            out.writeLong(NbdProtocol.OPTION_REPLY_MAGIC);
            out.writeInt(option);
            out.writeInt(NbdProtocol.REP_INFO);
            byte[] export = exportInfo(size, NbdProtocol.TF_HAS_FLAGS);
            out.writeInt(export.length);
            out.write(export);
            for (byte[] info : infos) {
                optionReply(out, option, NbdProtocol.REP_INFO, info);
            }
            optionReply(out, option, NbdProtocol.REP_ACK, new byte[0]);
            out.flush();
            serveZeros(in, out);
        };
    }

    /** Answers every READ with zeros, every other request with success, until the client disconnects. */
    static void serveZeros(DataInputStream in, DataOutputStream out) throws IOException {
        while (true) {
            if (in.readInt() != NbdProtocol.REQUEST_MAGIC) {
                return;
            }
            in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long cookie = in.readLong();
            in.readLong();
            int length = in.readInt();
            if (type == NbdProtocol.CMD_DISC) {
                return;
            }
            if (type == NbdProtocol.CMD_WRITE) {
                in.skipNBytes(length);
            }
            out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
            out.writeInt(0);
            out.writeLong(cookie);
            if (type == NbdProtocol.CMD_READ) {
                out.write(new byte[length]);
            }
            out.flush();
        }
    }
}

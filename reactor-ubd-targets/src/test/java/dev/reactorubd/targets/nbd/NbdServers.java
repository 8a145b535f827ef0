package dev.reactorubd.targets.nbd;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Real NBD servers as child processes, for tests: Debian's nbd-server and qemu-nbd (qemu-utils) on 127.0.0.1. A
 * missing binary fails the test with the command that installs it.
 */
public final class NbdServers {
    static final String NBD_SERVER = "/usr/bin/nbd-server";
    /**
     * How long device tests in the emulated VM give a connection to nbd-server, which forks a child for each: twice in
     * four full runs its greeting did not come within the library's default of 10 s (qemu-nbd's always did).
     */
    public static final Duration VM_CONNECT_TIMEOUT = Duration.ofSeconds(30);
    /**
     * How long a server may take to start listening: in the emulated VM a qemu-nbd with TLS credentials once took
     * over 15 s (while another had taken 2 s).
     */
    static final Duration SERVER_START = Duration.ofSeconds(60);

    static final String QEMU_NBD = "/usr/bin/qemu-nbd";
    static final String INSTALL = "apt-get install nbd-server qemu-utils";

    private NbdServers() {}

    static void require(String binary) {
        if (!Files.isExecutable(Path.of(binary))) {
            throw new AssertionError(binary + " is missing; these tests need real NBD servers: " + INSTALL);
        }
    }

    /** A port that was free a moment ago on 127.0.0.1. */
    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            return s.getLocalPort();
        }
    }

    /** A running server; {@link #close()} kills it (SIGKILL) and waits for it, bounded. */
    public static final class Server implements AutoCloseable {
        final Process process;
        final List<String> command;
        final Path log;
        /** The serving process: the child itself, or the daemon nbd-server forked off. */
        volatile ProcessHandle handle;

        Server(Process process, List<String> command, Path log) {
            this.process = process;
            this.command = command;
            this.log = log;
            this.handle = process.toHandle();
        }

        boolean isAlive() {
            return handle.isAlive();
        }

        /** Sends {@code signal} (STOP, CONT, ...) to the server and the processes it forked for its clients. */
        void signal(String signal) {
            List<String> cmd = new ArrayList<>(List.of("kill", "-" + signal, Long.toString(handle.pid())));
            handle.descendants().forEach(d -> cmd.add(Long.toString(d.pid())));
            try {
                Process k = new ProcessBuilder(cmd).redirectErrorStream(true).start();
                if (!k.waitFor(10, TimeUnit.SECONDS) || k.exitValue() != 0) {
                    throw new AssertionError(cmd + " failed");
                }
            } catch (IOException e) {
                throw new AssertionError(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }

        /** What the server printed, for failure messages. */
        String output() {
            try {
                return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
            } catch (IOException e) {
                return e.toString();
            }
        }

        /** Kills the server and its children (nbd-server forks one per client) at once. */
        public void kill() {
            List<ProcessHandle> all = new ArrayList<>(handle.descendants().toList());
            all.add(handle);
            all.add(process.toHandle());
            all.forEach(ProcessHandle::destroyForcibly);
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            for (ProcessHandle h : all) {
                while (!dead(h)) {
                    if (System.nanoTime() > end) {
                        throw new AssertionError("process " + h.pid() + " of " + command + " did not die");
                    }
                    sleep(10);
                }
            }
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /**
         * Gone, or a zombie: the daemon nbd-server forks is not our child, and whoever inherits it (the test VM's init
         * is a shell) may reap it late.
         */
        private static boolean dead(ProcessHandle h) {
            if (!h.isAlive()) {
                return true;
            }
            try {
                String stat = Files.readString(Path.of("/proc/" + h.pid() + "/stat"));
                char state = stat.charAt(stat.lastIndexOf(')') + 2);
                return state == 'Z' || state == 'X';
            } catch (IOException | RuntimeException e) {
                return true;
            }
        }

        @Override
        public void close() {
            kill();
        }
    }

    private static Server start(List<String> command, Path dir, String name) throws IOException {
        Path log = dir.resolve(name + ".log");
        Process p = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        p.getOutputStream().close();
        return new Server(p, command, log);
    }

    /**
     * nbd-server with a config of its own: port {@code port} on 127.0.0.1, export {@code exportName} backed by
     * {@code file}, FLUSH, FUA and TRIM offered. It runs as the daemon it makes of itself: with {@code -d} ("do not
     * fork") nbd-server 3.24 serves a single connection and exits, so it could serve neither reconnects nor several
     * connections. The daemon's pid comes from {@code -p PIDFILE}, and {@link Server#kill()} kills it with the processes it forked for its clients.
     */
    public static Server nbdServer(Path dir, Path file, int port, String exportName) throws IOException {
        return nbdServer(dir, file, port, exportName, "", "");
    }

    /**
     * {@link #nbdServer(Path, Path, int, String)} with more configuration: {@code generic} lines for its
     * {@code [generic]} section (e.g. TLS's certfile, keyfile, cacertfile), {@code export} lines for the export's
     * (e.g. {@code readonly = true}); each line ends with a newline.
     */
    public static Server nbdServer(Path dir, Path file, int port, String exportName, String generic, String export)
            throws IOException {
        require(NBD_SERVER);
        Path config = dir.resolve("nbd-server-" + port + ".conf");
        Path pidFile = dir.resolve("nbd-server-" + port + ".pid");
        Files.deleteIfExists(pidFile);
        Files.writeString(config, nbdServerConfig(file, port, exportName, generic, export));
        Server s = start(
                List.of(NBD_SERVER, "-C", config.toString(), "-p", pidFile.toString()), dir, "nbd-server-" + port);
        long end = System.nanoTime() + SERVER_START.toNanos();
        while (true) {
            String pid = Files.exists(pidFile) ? Files.readString(pidFile).strip() : "";
            if (!pid.isEmpty()) {
                s.handle = ProcessHandle.of(Long.parseLong(pid))
                        .orElseThrow(
                                () -> new AssertionError("nbd-server's daemon " + pid + " is gone:\n" + s.output()));
                break;
            }
            if (System.nanoTime() > end) {
                s.kill();
                throw new AssertionError(
                        "nbd-server wrote no pid file within " + SERVER_START.toSeconds() + " s:\n" + s.output());
            }
            sleep(20);
        }
        waitForPort(s, port);
        return s;
    }

    /** The exact configuration {@link #nbdServer} writes. */
    static String nbdServerConfig(Path file, int port, String exportName) {
        return nbdServerConfig(file, port, exportName, "", "");
    }

    static String nbdServerConfig(Path file, int port, String exportName, String generic, String export) {
        return "[generic]\n"
                + "    port = " + port + "\n"
                + "    listenaddr = 127.0.0.1\n"
                + generic
                + "[" + exportName + "]\n"
                + "    exportname = " + file.toAbsolutePath() + "\n"
                + "    flush = true\n"
                + "    fua = true\n"
                + "    trim = true\n"
                + export;
    }

    /**
     * qemu-nbd serving {@code file} (raw) as {@code exportName} on 127.0.0.1:{@code port}, or on the Unix socket
     * {@code socket} when it is not null, to up to {@code shared} clients at once.
     */
    public static Server qemuNbd(
            Path dir, Path file, int port, Path socket, String exportName, int shared, String... extra)
            throws IOException {
        require(QEMU_NBD);
        List<String> cmd = new ArrayList<>(List.of(
                QEMU_NBD, "-f", "raw", "-x", exportName, "--shared=" + shared, "--persistent", "--discard=unmap"));
        if (socket != null) {
            cmd.addAll(List.of("-k", socket.toString()));
        } else {
            cmd.addAll(List.of("-b", "127.0.0.1", "-p", Integer.toString(port)));
        }
        cmd.addAll(List.of(extra));
        cmd.add(file.toString());
        Server s = start(cmd, dir, "qemu-nbd-" + (socket != null ? "unix" : Integer.toString(port)));
        if (socket != null) {
            waitForSocket(s, socket);
        } else {
            waitForPort(s, port);
        }
        return s;
    }

    /** Waits (at most {@link #SERVER_START}) until {@code port} accepts a connection. */
    static void waitForPort(Server s, int port) {
        long end = System.nanoTime() + SERVER_START.toNanos();
        while (System.nanoTime() < end) {
            if (!s.isAlive()) {
                throw new AssertionError(s.command + " exited:\n" + s.output());
            }
            try (Socket c = new Socket()) {
                c.connect(new InetSocketAddress("127.0.0.1", port), 500);
                return;
            } catch (IOException e) {
                sleep(50);
            }
        }
        s.kill();
        throw new AssertionError(s.command + " did not listen on port " + port + " within " + SERVER_START.toSeconds()
                + " s:\n" + s.output());
    }

    /** Waits (at most {@link #SERVER_START}) until the Unix socket accepts a connection. */
    static void waitForSocket(Server s, Path socket) {
        long end = System.nanoTime() + SERVER_START.toNanos();
        while (System.nanoTime() < end) {
            if (!s.process.isAlive()) {
                throw new AssertionError(s.command + " exited with " + s.process.exitValue() + ":\n" + s.output());
            }
            if (Files.exists(socket)) {
                try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                    c.connect(UnixDomainSocketAddress.of(socket));
                    return;
                } catch (IOException e) {
                    // not yet
                }
            }
            sleep(50);
        }
        s.kill();
        throw new AssertionError(s.command + " did not listen on " + socket + " within " + SERVER_START.toSeconds()
                + " s:\n" + s.output());
    }

    public static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** A file of {@code bytes} zeros (sparse). */
    public static Path exportFile(Path dir, String name, long bytes) throws IOException {
        Path f = dir.resolve(name);
        try (var raf = new RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(bytes);
        }
        return f;
    }
}

package dev.reactorubd.targets.rbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The real Ceph cluster of the RBD tests: the one {@code UBD_CEPH_CONF} names (scripts/test-all starts one for the
 * whole run), or else one this JVM starts with scripts/ceph-cluster and stops when it exits. Images are made and
 * changed with Ceph's own {@code rbd} tool, so that the tests check the backend against Ceph, not against itself.
 */
final class CephTestCluster {
    private static final AtomicInteger NAMES = new AtomicInteger();
    private static volatile CephTestCluster started;

    /** The cluster's ceph.conf. */
    final Path conf;
    /** The directory that holds it, its keyrings and its daemons' files. */
    final Path dir;

    private CephTestCluster(Path conf) {
        this.conf = conf;
        this.dir = conf.getParent();
    }

    /** {@return the cluster, started on the first call when the environment names none} */
    static synchronized CephTestCluster get() throws IOException, InterruptedException {
        if (started != null) {
            return started;
        }
        String given = System.getenv("UBD_CEPH_CONF");
        if (given != null && !given.isEmpty()) {
            started = new CephTestCluster(Path.of(given));
            return started;
        }
        Path script = script();
        String dir = Path.of(
                        System.getProperty("java.io.tmpdir"),
                        "reactor-ubd-ceph-" + ProcessHandle.current().pid())
                .toString();
        String out = run(List.of(script.toString(), "start", dir), 300).trim();
        String[] lines = out.split("\n");
        CephTestCluster c = new CephTestCluster(Path.of(lines[lines.length - 1].trim()));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                run(List.of(script.toString(), "stop", dir), 60);
            } catch (Exception e) {
                System.err.println("stopping the test cluster in " + dir + " failed: " + e);
            }
        }));
        started = c;
        return c;
    }

    private static Path script() {
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path s = d.resolve("scripts/ceph-cluster");
            if (Files.isExecutable(s)) {
                return s;
            }
        }
        throw new IllegalStateException(
                "scripts/ceph-cluster not found above " + Path.of("").toAbsolutePath());
    }

    /** {@return a spec of {@code image} in pool rbd, as client.admin through this cluster's configuration} */
    RbdImageSpec admin(String image) {
        return RbdImageSpec.parse("rbd:rbd/" + image + "?conf=" + conf);
    }

    /** {@return the least-privileged client's spec of {@code image} (client.ubd, profile rbd on pool rbd)} */
    RbdImageSpec client(String image) {
        return RbdImageSpec.parse(
                "rbd:rbd/" + image + "?conf=" + conf + "&id=ubd&keyring=" + dir.resolve("ceph.client.ubd.keyring"));
    }

    /** Creates an image of {@code bytes} in pool rbd under a fresh name, and returns the name. */
    String createImage(String prefix, long bytes) throws IOException, InterruptedException {
        String name = prefix + "-" + ProcessHandle.current().pid() + "-" + NAMES.incrementAndGet();
        rbd("create", "--size", (bytes >> 20) + "M", "rbd/" + name);
        return name;
    }

    /** Runs Ceph's {@code rbd} tool on this cluster as client.admin and returns its output. */
    String rbd(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("rbd", "-c", conf.toString()));
        cmd.addAll(List.of(args));
        return run(cmd, 120);
    }

    /** Kills the OSD (SIGKILL) and marks it down. */
    void stopOsd() throws IOException, InterruptedException {
        osd("osd-stop", 60);
    }

    /** Starts the OSD again and waits until the pool takes IO. */
    void startOsd() throws IOException, InterruptedException {
        osd("osd-start", 120);
    }

    /**
     * Runs scripts/ceph-cluster's osd-stop or osd-start: here, or, in the test VM (whose processes are not the
     * host's), on the host through the port that {@code UBD_CEPH_CONTROL_PORT} names (ubd-vm --host-command).
     */
    private void osd(String request, int seconds) throws IOException, InterruptedException {
        String port = System.getenv("UBD_CEPH_CONTROL_PORT");
        if (port == null || port.isEmpty()) {
            run(List.of(script().toString(), request, dir.toString()), seconds);
            return;
        }
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), Integer.parseInt(port)), 10_000);
            s.setSoTimeout(seconds * 1000);
            s.getOutputStream().write((request + "\n").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            String answer = new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).strip();
            assertEquals("ok", answer, request + " through the host's control port " + port);
        }
    }

    private static String run(List<String> cmd, int seconds) throws IOException, InterruptedException {
        // Output to a file, not a pipe: a daemon the command starts must not hold the test's reading end open.
        Path log = Files.createTempFile("ceph-tool", ".log");
        try {
            Process p = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            p.getOutputStream().close();
            if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(cmd + " did not finish within " + seconds + " s: " + Files.readString(log));
            }
            String text = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), cmd + " failed: " + text);
            return text;
        } finally {
            Files.deleteIfExists(log);
        }
    }
}

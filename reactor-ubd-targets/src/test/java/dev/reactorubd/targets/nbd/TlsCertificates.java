package dev.reactorubd.targets.nbd;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Certificates for the TLS tests, made with openssl as docs/security.md tells an operator to: a CA, a server
 * certificate it signed naming 127.0.0.1 and localhost, a client certificate it signed, and a second CA that signed
 * nothing the server has. Directories laid out as qemu-nbd ({@code tls-creds-x509,dir=}) and {@code tls-certificates=}
 * want them. EC P-256 keys: quick to make and to use, also in the emulated VM.
 *
 * @param root         where everything is
 * @param serverDir    {@code ca-cert.pem}, {@code server-cert.pem}, {@code server-key.pem} (qemu-nbd's layout)
 * @param clientDir    {@code ca-cert.pem}, {@code client-cert.pem}, {@code client-key.pem}
 * @param caOnlyDir    {@code ca-cert.pem} only: no client certificate
 * @param otherCaDir   another CA's {@code ca-cert.pem} (it did not sign the server's certificate)
 * @param strangerDir  the right CA, but a client certificate the other CA signed
 */
record TlsCertificates(Path root, Path serverDir, Path clientDir, Path caOnlyDir, Path otherCaDir, Path strangerDir) {
    static final String OPENSSL = "/usr/bin/openssl";

    static TlsCertificates make(Path root) throws IOException {
        NbdServers.require(OPENSSL);
        TlsCertificates t = new TlsCertificates(
                root,
                root.resolve("server"),
                root.resolve("client"),
                root.resolve("ca-only"),
                root.resolve("other-ca"),
                root.resolve("stranger"));
        for (Path d : List.of(t.serverDir, t.clientDir, t.caOnlyDir, t.otherCaDir, t.strangerDir)) {
            Files.createDirectories(d);
        }
        Path ca = root.resolve("ca-cert.pem");
        Path caKey = root.resolve("ca-key.pem");
        Path otherCa = t.otherCaDir.resolve("ca-cert.pem");
        Path otherKey = root.resolve("other-ca-key.pem");
        makeCa(root, "reactor-ubd test CA", ca, caKey);
        makeCa(root, "another CA", otherCa, otherKey);
        sign(
                root,
                "localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
                ca,
                caKey,
                t.serverDir.resolve("server-cert.pem"),
                t.serverDir.resolve("server-key.pem"));
        sign(
                root,
                "ubd-client",
                "extendedKeyUsage=clientAuth\n",
                ca,
                caKey,
                t.clientDir.resolve("client-cert.pem"),
                t.clientDir.resolve("client-key.pem"));
        sign(
                root,
                "stranger",
                "extendedKeyUsage=clientAuth\n",
                otherCa,
                otherKey,
                t.strangerDir.resolve("client-cert.pem"),
                t.strangerDir.resolve("client-key.pem"));
        for (Path d : List.of(t.serverDir, t.clientDir, t.caOnlyDir, t.strangerDir)) {
            Files.copy(ca, d.resolve("ca-cert.pem"));
        }
        return t;
    }

    private static void makeCa(Path dir, String name, Path cert, Path key) throws IOException {
        run(
                dir,
                OPENSSL,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key.toString(),
                "-out",
                cert.toString(),
                "-days",
                "3",
                "-subj",
                "/CN=" + name,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign");
    }

    private static void sign(Path dir, String name, String extensions, Path ca, Path caKey, Path cert, Path key)
            throws IOException {
        Path csr = dir.resolve(name + ".csr");
        Path ext = dir.resolve(name + ".ext");
        Files.writeString(
                ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" + extensions);
        run(
                dir,
                OPENSSL,
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key.toString(),
                "-out",
                csr.toString(),
                "-subj",
                "/CN=" + name);
        run(
                dir,
                OPENSSL,
                "x509",
                "-req",
                "-in",
                csr.toString(),
                "-CA",
                ca.toString(),
                "-CAkey",
                caKey.toString(),
                "-CAcreateserial",
                "-out",
                cert.toString(),
                "-days",
                "3",
                "-extfile",
                ext.toString());
        // qemu-nbd runs as this user and reads the keys; the files are the test's own.
    }

    private static void run(Path dir, String... command) throws IOException {
        Process p = new ProcessBuilder(new ArrayList<>(List.of(command)))
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        p.getOutputStream().close();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", command) + " took over 60 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
        String out = new String(p.getInputStream().readAllBytes());
        if (p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", command) + " failed: " + out);
        }
    }
}

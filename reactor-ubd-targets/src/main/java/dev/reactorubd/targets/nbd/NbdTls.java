package dev.reactorubd.targets.nbd;

import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;

/**
 * The TLS side of an {@code nbds://} export: X.509 credentials read once (off the event loops, in {@link
 * NbdBackend#connect}) and a new {@link SslHandler} for every connection, reconnects included.
 *
 * <p>The server's certificate must chain to the CA given (and only to it: the JDK's default trust store is not used),
 * and must name the host of the URI (or its {@code tls-hostname}) in its subjectAltName; a Unix socket URI without
 * {@code tls-hostname} has its certificate checked against the CA only. A client certificate is offered when one is
 * configured and the server asks for it. Netty's JDK provider: TLS 1.3 and 1.2.
 *
 * @param context     the client context
 * @param peerHost    the name the certificate must hold, or null (a Unix socket without {@code tls-hostname})
 * @param peerPort    the TCP port, or 0
 * @param caFile      the CA certificate file, for messages
 * @param certFile    the client certificate file, or null
 * @param timeout     the bound on the TLS handshake (the connect timeout)
 */
record NbdTls(SslContext context, String peerHost, int peerPort, Path caFile, Path certFile, Duration timeout) {
    /** The files of a {@code tls-certificates} directory, named as qemu, libnbd and nbdkit name them. */
    static final String CA_CERT = "ca-cert.pem";

    static final String CLIENT_CERT = "client-cert.pem";
    static final String CLIENT_KEY = "client-key.pem";

    /**
     * Reads the credentials for {@code uri} (a TLS one): the URI's {@code tls-certificates} directory when it names
     * one, else the options'. Blocking (reads files): never on an event loop.
     *
     * @throws NbdException when there is no CA, or a file cannot be read or parsed
     */
    static NbdTls load(NbdUri uri, NbdOptions options) {
        Path dir = uri.tlsCertificates() != null ? Path.of(uri.tlsCertificates()) : options.tlsCertificates();
        Path ca = uri.tlsCertificates() == null && options.tlsCaFile() != null
                ? options.tlsCaFile()
                : dir == null ? null : dir.resolve(CA_CERT);
        Path cert = null;
        Path key = null;
        if (uri.tlsCertificates() == null && options.tlsClientCertificate() != null) {
            cert = options.tlsClientCertificate();
            key = options.tlsClientKey();
        } else if (dir != null && Files.exists(dir.resolve(CLIENT_CERT))) {
            cert = dir.resolve(CLIENT_CERT);
            key = dir.resolve(CLIENT_KEY);
        }
        if (ca == null) {
            throw new NbdException(uri + " asks for TLS, but no CA certificate is configured: add"
                    + " ?tls-certificates=DIR (a directory with " + CA_CERT + ", and " + CLIENT_CERT + " and "
                    + CLIENT_KEY + " when the server wants a client certificate) or set NbdOptions.Builder"
                    + ".tlsCertificates / tlsCaFile (docs/security.md, NBD over TLS)");
        }
        readable(uri, ca, "CA certificate");
        if (cert != null) {
            readable(uri, cert, "client certificate");
            readable(uri, key, "client key");
        }
        String host = uri.tlsHostname() != null ? uri.tlsHostname() : uri.host();
        try {
            SslContextBuilder b = SslContextBuilder.forClient()
                    .sslProvider(SslProvider.JDK)
                    .protocols("TLSv1.3", "TLSv1.2")
                    .trustManager(ca.toFile())
                    // Checks the server's name (DNS or IP subjectAltName) against host: see newHandler.
                    .endpointIdentificationAlgorithm(host == null ? null : "HTTPS");
            if (cert != null) {
                b.keyManager(cert.toFile(), key.toFile());
            }
            return new NbdTls(b.build(), host, uri.port(), ca, cert, options.connectTimeout());
        } catch (SSLException | IllegalArgumentException e) {
            throw new NbdException(
                    "cannot use the TLS credentials for " + uri + " (CA " + ca
                            + (cert == null ? "" : ", client certificate " + cert + " and key " + key) + "): "
                            + rootMessage(e)
                            + "; the files must be PEM, the key unencrypted PKCS#8 (openssl pkcs8 -topk8 -nocrypt)",
                    e);
        }
    }

    private static void readable(NbdUri uri, Path file, String what) {
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new NbdException("cannot read the " + what + " " + file + " for " + uri + "; make it"
                    + " (docs/security.md, NBD over TLS) or point tls-certificates at the directory that holds it");
        }
    }

    /** A handler for one new connection, with the peer's name for SNI and the certificate check. */
    SslHandler newHandler(ByteBufAllocator alloc) {
        SslHandler h = peerHost == null ? context.newHandler(alloc) : context.newHandler(alloc, peerHost, peerPort);
        h.setHandshakeTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS);
        return h;
    }

    /** Whether {@code t} (or a cause) is a TLS failure, as opposed to a network one. */
    static boolean isTlsFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof SSLException || c instanceof CertificateException) {
                return true;
            }
        }
        return false;
    }

    /** The error for a failed TLS handshake, saying what to check. */
    NbdException handshakeFailed(String uri, Throwable cause) {
        String why = rootMessage(cause);
        StringBuilder chain = new StringBuilder();
        for (Throwable c = cause; c != null && chain.length() < 4096; c = c.getCause() == c ? null : c.getCause()) {
            chain.append(c.getMessage()).append(' ');
        }
        String all = chain.toString();
        String check;
        if (all.contains("PKIX") || all.contains("certification path") || all.contains("signature check")) {
            check = "the server's certificate is not signed by the CA in " + caFile + ": give the CA that signed it"
                    + " (tls-certificates), or give the server a certificate from this CA";
        } else if (all.contains("No subject alternative") || all.contains("No name matching")) {
            check = "the server's certificate does not name " + peerHost + " in its subjectAltName: give it one that"
                    + " does, or set tls-hostname= to the name it holds";
        } else if (all.contains("certificate_required")
                || all.contains("bad_certificate")
                || all.contains("unknown_ca")) {
            check = certFile == null
                    ? "the server wants a client certificate: put " + CLIENT_CERT + " and " + CLIENT_KEY
                            + " in the tls-certificates directory"
                    : "the server refused the client certificate " + certFile + ": it must be signed by a CA the"
                            + " server trusts";
        } else {
            check = "check that the server serves TLS with a certificate from the CA in " + caFile;
        }
        return new NbdException(
                "TLS with " + uri + " failed (" + why + "): " + check
                        + ". The URI asks for TLS, so the client does not go on in plain text",
                cause);
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        String message = null;
        while (c != null) {
            if (c.getMessage() != null) {
                message = c.getMessage();
            }
            if (c.getCause() == c) {
                break;
            }
            c = c.getCause();
        }
        return message == null ? t.getClass().getSimpleName() : message;
    }
}

package dev.reactorubd.targets.nbd;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * Where an NBD export is: a TCP host and port, or a Unix socket, and the export's name. Written as the NBD URI
 * convention has it:
 * <ul>
 *   <li>{@code nbd://host[:port]/export}: TCP; the port defaults to {@value #DEFAULT_PORT}; IPv6 hosts in brackets
 *       ({@code nbd://[::1]/disk}); an empty export ({@code nbd://host} or {@code nbd://host/}) asks for the
 *       server's default export.</li>
 *   <li>{@code nbd+unix:///export?socket=PATH}: a Unix domain socket at {@code PATH} (no host).</li>
 *   <li>{@code nbds://host[:port]/export} and {@code nbds+unix:///export?socket=PATH}: the same over TLS, which is
 *       then required: NBD_OPT_STARTTLS first, and a server that refuses it fails the connect (never plain text).
 *       Their query parameters: {@code tls-certificates=DIR} (a directory holding {@code ca-cert.pem}, and
 *       {@code client-cert.pem} with {@code client-key.pem} for a client certificate; without it, {@link
 *       NbdOptions}' credentials), {@code tls-hostname=NAME} (the name the server's certificate must hold instead of
 *       the host; for a Unix socket, without it the certificate is checked against the CA only), {@code
 *       tls-type=x509} (the only type supported) and {@code tls-verify-peer=1} (the server is always verified;
 *       {@code 0} is refused).</li>
 * </ul>
 * The export name is percent-decoded ({@code nbd://h/my%20disk} names {@code "my disk"}). Parsing failures throw
 * {@link IllegalArgumentException} with a message that shows a correct URI.
 *
 * @param host            the TCP host, or {@code null} for a Unix socket
 * @param port            the TCP port, or 0 for a Unix socket
 * @param socketPath      the Unix socket's path, or {@code null} for TCP
 * @param exportName      the export's name; {@code ""} for the server's default export
 * @param tls             whether TLS is required ({@code nbds://}, {@code nbds+unix://})
 * @param tlsCertificates the directory of the TLS credentials ({@code tls-certificates}), or {@code null}
 * @param tlsHostname     the name the server's certificate must hold ({@code tls-hostname}), or {@code null}
 */
public record NbdUri(
        String host,
        int port,
        String socketPath,
        String exportName,
        boolean tls,
        String tlsCertificates,
        String tlsHostname) {
    /** The IANA port of NBD. */
    public static final int DEFAULT_PORT = 10809;

    private static final String FORMS = "write nbd://HOST[:PORT]/EXPORT (e.g. nbd://127.0.0.1:10809/disk) or "
            + "nbd+unix:///EXPORT?socket=/path/to/socket; over TLS nbds://HOST[:PORT]/EXPORT[?tls-certificates=DIR]"
            + " or nbds+unix:///EXPORT?socket=PATH[&tls-certificates=DIR][&tls-hostname=NAME]";

    /**
     * A URI without TLS.
     *
     * @param host       the TCP host, or {@code null} for a Unix socket
     * @param port       the TCP port, or 0 for a Unix socket
     * @param socketPath the Unix socket's path, or {@code null} for TCP
     * @param exportName the export's name; {@code ""} for the server's default export
     */
    public NbdUri(String host, int port, String socketPath, String exportName) {
        this(host, port, socketPath, exportName, false, null, null);
    }

    /**
     * Checks the components.
     *
     * @throws IllegalArgumentException when the URI names both or neither of a host and a socket, a bad port, an empty
     *         socket path, an export name over 4096 bytes, or TLS parameters without TLS
     */
    public NbdUri {
        Objects.requireNonNull(exportName, "exportName");
        if ((host == null) == (socketPath == null)) {
            throw new IllegalArgumentException("an NBD URI names either a TCP host or a Unix socket: " + FORMS);
        }
        if (host != null && (host.isEmpty() || port < 1 || port > 65535)) {
            throw new IllegalArgumentException("bad NBD host or port '" + host + ":" + port + "': " + FORMS);
        }
        if (socketPath != null && socketPath.isEmpty()) {
            throw new IllegalArgumentException("empty Unix socket path: " + FORMS);
        }
        if (exportName.length() > 4096) {
            throw new IllegalArgumentException("an NBD export name has at most 4096 bytes; was " + exportName.length());
        }
        if (!tls && (tlsCertificates != null || tlsHostname != null)) {
            throw new IllegalArgumentException("TLS parameters on a URI without TLS: use nbds:// or nbds+unix://");
        }
        if (tlsCertificates != null && tlsCertificates.isEmpty() || tlsHostname != null && tlsHostname.isEmpty()) {
            throw new IllegalArgumentException("an empty tls-certificates or tls-hostname: " + FORMS);
        }
    }

    /**
     * This URI with TLS required, and the given credentials and name.
     *
     * @param certificates the directory of the TLS credentials, or {@code null} for {@link NbdOptions}'
     * @param hostname     the name the server's certificate must hold, or {@code null} for the host
     * @return the URI
     */
    public NbdUri withTls(String certificates, String hostname) {
        return new NbdUri(host, port, socketPath, exportName, true, certificates, hostname);
    }

    /**
     * A TCP export.
     *
     * @param host the host name or address
     * @param port the TCP port, usually {@link #DEFAULT_PORT}
     * @param exportName the export's name; {@code ""} for the server's default export
     * @return the URI
     */
    public static NbdUri tcp(String host, int port, String exportName) {
        return new NbdUri(host, port, null, exportName);
    }

    /**
     * An export on a Unix socket.
     *
     * @param socketPath the socket's path
     * @param exportName the export's name; {@code ""} for the server's default export
     * @return the URI
     */
    public static NbdUri unix(String socketPath, String exportName) {
        return new NbdUri(null, 0, socketPath, exportName);
    }

    /**
     * Parses an NBD URI (see the class comment).
     *
     * @param uri the NBD URI: {@code nbd://host[:port]/export}, {@code nbd+unix:///export?socket=PATH}, or the same
     *            with {@code nbds} for TLS
     * @return the URI
     * @throws IllegalArgumentException when {@code uri} is not one; the message says what a right one looks like
     */
    public static NbdUri parse(String uri) {
        Objects.requireNonNull(uri, "uri");
        URI u;
        try {
            u = new URI(uri.strip());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("'" + uri + "' is not a URI (" + e.getReason() + "): " + FORMS, e);
        }
        String scheme = u.getScheme();
        if (scheme == null) {
            throw new IllegalArgumentException("'" + uri + "' has no scheme: " + FORMS);
        }
        String export = exportOf(uri, u);
        String lower = scheme.toLowerCase(Locale.ROOT);
        boolean tls = lower.startsWith("nbds");
        boolean unix = lower.endsWith("+unix");
        if (!List.of("nbd", "nbd+tcp", "nbd+unix", "nbds", "nbds+tcp", "nbds+unix")
                .contains(lower)) {
            throw new IllegalArgumentException("'" + uri + "' is not an NBD URI (scheme '" + scheme + "'): " + FORMS);
        }
        String socket = null;
        String certificates = null;
        String hostname = null;
        String query = u.getRawQuery();
        if (query != null) {
            for (String param : query.split("&")) {
                int eq = param.indexOf('=');
                String key = eq < 0 ? param : param.substring(0, eq);
                String value = eq < 0 ? "" : URLDecoder.decode(param.substring(eq + 1), StandardCharsets.UTF_8);
                switch (key) {
                    case "socket" -> {
                        if (!unix) {
                            throw new IllegalArgumentException("'" + uri + "' has a socket, which " + lower
                                    + ":// URIs do not take (a Unix socket is " + (tls ? "nbds" : "nbd")
                                    + "+unix:///EXPORT?socket=PATH): " + FORMS);
                        }
                        socket = value;
                    }
                    case "tls-certificates", "tls-hostname", "tls-type", "tls-verify-peer" -> {
                        if (!tls) {
                            throw new IllegalArgumentException("'" + uri + "' has the TLS parameter '" + key
                                    + "' but does not ask for TLS: " + FORMS);
                        }
                        switch (key) {
                            case "tls-certificates" -> certificates = value;
                            case "tls-hostname" -> hostname = value;
                            case "tls-type" -> {
                                if (!"x509".equals(value)) {
                                    throw new IllegalArgumentException("'" + uri + "' asks for tls-type=" + value
                                            + "; this client supports x509 certificates only (tls-type=x509): "
                                            + FORMS);
                                }
                            }
                            default -> {
                                if (!"1".equals(value)) {
                                    throw new IllegalArgumentException("'" + uri + "' asks for tls-verify-peer="
                                            + value + "; this client always verifies the server's certificate"
                                            + " (against the CA in tls-certificates), so only tls-verify-peer=1 is"
                                            + " accepted: " + FORMS);
                                }
                            }
                        }
                    }
                    default ->
                        throw new IllegalArgumentException(
                                "'" + uri + "' has an unknown parameter '" + key + "': " + FORMS);
                }
            }
        }
        if (unix) {
            if (u.getRawAuthority() != null && !u.getRawAuthority().isEmpty()) {
                throw new IllegalArgumentException("'" + uri + "' names a host, but a Unix socket URI has none"
                        + " (three slashes: " + lower + ":///EXPORT?socket=PATH): " + FORMS);
            }
            if (socket == null || socket.isEmpty()) {
                throw new IllegalArgumentException("'" + uri + "' names no socket: " + FORMS);
            }
            return new NbdUri(null, 0, socket, export, tls, certificates, hostname);
        }
        if (u.getHost() == null) {
            throw new IllegalArgumentException("'" + uri + "' has no host, or a bad host or port: " + FORMS);
        }
        if (u.getUserInfo() != null) {
            throw new IllegalArgumentException("'" + uri + "' has user info, which this client does not use: " + FORMS);
        }
        String host = u.getHost();
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = u.getPort() == -1 ? DEFAULT_PORT : u.getPort();
        if (port == 0) {
            throw new IllegalArgumentException("'" + uri + "' has port 0: " + FORMS);
        }
        return new NbdUri(host, port, null, export, tls, certificates, hostname);
    }

    private static String exportOf(String uri, URI u) {
        if (u.isOpaque()) {
            throw new IllegalArgumentException("'" + uri + "' lacks the '//' after the scheme: " + FORMS);
        }
        String path = u.getPath();
        if (path == null || path.isEmpty()) {
            return "";
        }
        return path.substring(1);
    }

    /** {@return whether the export is reached through a Unix socket} */
    public boolean isUnix() {
        return socketPath != null;
    }

    /** The URI in its canonical form, as parsed by {@link #parse}. */
    @Override
    public String toString() {
        String export = encode(exportName);
        String s = tls ? "nbds" : "nbd";
        String params = (tlsCertificates == null ? "" : "&tls-certificates=" + queryValue(tlsCertificates))
                + (tlsHostname == null ? "" : "&tls-hostname=" + queryValue(tlsHostname));
        if (isUnix()) {
            return s + "+unix:///" + export + "?socket=" + queryValue(socketPath) + params;
        }
        String h = host.indexOf(':') >= 0 ? "[" + host + "]" : host;
        return s + "://" + h + ":" + port + "/" + export + (params.isEmpty() ? "" : "?" + params.substring(1));
    }

    /** A query value as {@link #parse} decodes it back: the characters a query or its decoding would change. */
    private static String queryValue(String v) {
        StringBuilder b = new StringBuilder(v.length());
        for (char c : v.toCharArray()) {
            switch (c) {
                case '%' -> b.append("%25");
                case '&' -> b.append("%26");
                case '+' -> b.append("%2B");
                case ' ' -> b.append("%20");
                case '#' -> b.append("%23");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    private static String encode(String s) {
        try {
            // Percent-encodes what a URI path cannot hold as it is; the path is rebuilt without its leading slash.
            return new URI(null, null, "/" + s, null).getRawPath().substring(1);
        } catch (URISyntaxException e) {
            return s;
        }
    }
}

package dev.reactorubd.targets.nbd;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * Where an NBD export is: a TCP host and port, or a Unix socket, and the export's name. Written as the NBD URI
 * convention has it:
 * <ul>
 *   <li>{@code nbd://host[:port]/export}: TCP; the port defaults to {@value #DEFAULT_PORT}; IPv6 hosts in brackets
 *       ({@code nbd://[::1]/disk}); an empty export ({@code nbd://host} or {@code nbd://host/}) asks for the
 *       server's default export.</li>
 *   <li>{@code nbd+unix:///export?socket=PATH}: a Unix domain socket at {@code PATH} (no host).</li>
 * </ul>
 * The export name is percent-decoded ({@code nbd://h/my%20disk} names {@code "my disk"}). TLS ({@code nbds://})
 * is not supported. Parsing failures throw {@link IllegalArgumentException} with a message that shows a correct URI.
 *
 * @param host       the TCP host, or {@code null} for a Unix socket
 * @param port       the TCP port, or 0 for a Unix socket
 * @param socketPath the Unix socket's path, or {@code null} for TCP
 * @param exportName the export's name; {@code ""} for the server's default export
 */
public record NbdUri(String host, int port, String socketPath, String exportName) {
    /** The IANA port of NBD. */
    public static final int DEFAULT_PORT = 10809;

    private static final String FORMS = "write nbd://HOST[:PORT]/EXPORT (e.g. nbd://127.0.0.1:10809/disk) or "
            + "nbd+unix:///EXPORT?socket=/path/to/socket";

    /**
     * Checks the components.
     *
     * @throws IllegalArgumentException when the URI names both or neither of a host and a socket, a bad port, an empty
     *         socket path, or an export name over 4096 bytes
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
     * @param uri the NBD URI: {@code nbd://host[:port]/export} or {@code nbd+unix:///export?socket=PATH}
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
        switch (scheme.toLowerCase(java.util.Locale.ROOT)) {
            case "nbd", "nbd+tcp" -> {
                if (u.getHost() == null) {
                    throw new IllegalArgumentException("'" + uri + "' has no host, or a bad host or port: " + FORMS);
                }
                if (u.getRawQuery() != null) {
                    throw new IllegalArgumentException("'" + uri + "' has a query, which nbd:// URIs do not take"
                            + " (a Unix socket is nbd+unix:///EXPORT?socket=PATH): " + FORMS);
                }
                if (u.getUserInfo() != null) {
                    throw new IllegalArgumentException("'" + uri + "' has user info, which NBD does not use: " + FORMS);
                }
                String host = u.getHost();
                if (host.startsWith("[") && host.endsWith("]")) {
                    host = host.substring(1, host.length() - 1);
                }
                int port = u.getPort() == -1 ? DEFAULT_PORT : u.getPort();
                if (port == 0) {
                    throw new IllegalArgumentException("'" + uri + "' has port 0: " + FORMS);
                }
                return tcp(host, port, export);
            }
            case "nbd+unix" -> {
                if (u.getRawAuthority() != null && !u.getRawAuthority().isEmpty()) {
                    throw new IllegalArgumentException("'" + uri + "' names a host, but a Unix socket URI has none"
                            + " (three slashes: nbd+unix:///EXPORT?socket=PATH): " + FORMS);
                }
                String socket = null;
                String query = u.getRawQuery();
                if (query != null) {
                    for (String param : query.split("&")) {
                        int eq = param.indexOf('=');
                        String key = eq < 0 ? param : param.substring(0, eq);
                        String value = eq < 0 ? "" : URLDecoder.decode(param.substring(eq + 1), StandardCharsets.UTF_8);
                        if (!"socket".equals(key)) {
                            throw new IllegalArgumentException("'" + uri + "' has an unknown parameter '" + key
                                    + "': " + FORMS);
                        }
                        socket = value;
                    }
                }
                if (socket == null || socket.isEmpty()) {
                    throw new IllegalArgumentException("'" + uri + "' names no socket: " + FORMS);
                }
                return unix(socket, export);
            }
            case "nbds", "nbds+unix", "nbds+tcp" -> throw new IllegalArgumentException("'" + uri
                    + "' asks for TLS, which this client does not support: " + FORMS);
            default -> throw new IllegalArgumentException("'" + uri + "' is not an NBD URI (scheme '" + scheme
                    + "'): " + FORMS);
        }
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
        if (isUnix()) {
            return "nbd+unix:///" + export + "?socket=" + socketPath;
        }
        String h = host.indexOf(':') >= 0 ? "[" + host + "]" : host;
        return "nbd://" + h + ":" + port + "/" + export;
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

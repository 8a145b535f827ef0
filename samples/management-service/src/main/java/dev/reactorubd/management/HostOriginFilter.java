package dev.reactorubd.management;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.Ordered;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Refuses requests that a browser was tricked into sending, before any credential is looked at:
 * <ul>
 *   <li>a Host header whose name is not {@code localhost}, {@code 127.0.0.1}, {@code [::1]} or one of
 *       {@code ubd.security.allowed-hosts}: 421. A page whose name an attacker rebinds to this machine's address
 *       (DNS rebinding) reaches the port with its own name as Host, so it is refused whatever it sends;</li>
 *   <li>a POST, PUT, PATCH or DELETE whose Origin is not this service (scheme, host and port of the request): 403.
 *       Browsers send Origin on every such request; scripts send none and are let through (they need credentials
 *       anyway).</li>
 * </ul>
 * Answers are small RFC 9457 problem bodies.
 */
public class HostOriginFilter implements WebFilter, Ordered {
    private static final Logger log = LoggerFactory.getLogger(HostOriginFilter.class);
    private static final Set<HttpMethod> SAFE =
            Set.of(HttpMethod.GET, HttpMethod.HEAD, HttpMethod.OPTIONS, HttpMethod.TRACE);
    private final Set<String> allowed;

    /**
     * A filter accepting the loopback names and these.
     *
     * @param allowedHosts further host names or addresses (IPv6 with or without brackets), case aside
     */
    public HostOriginFilter(List<String> allowedHosts) {
        Set<String> names = new HashSet<>(Set.of("localhost", "127.0.0.1", "::1"));
        for (String h : allowedHosts) {
            names.add(unbracket(h.strip().toLowerCase(Locale.ROOT)));
        }
        this.allowed = Set.copyOf(names);
    }

    /** {@return first of every filter: before Spring Security's (-100), so before any credential is looked at} */
    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE;
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        ServerHttpRequest request = exchange.getRequest();
        String hostHeader = request.getHeaders().getFirst(HttpHeaders.HOST);
        String host = hostHeader == null ? null : hostName(hostHeader);
        if (host == null || !allowed.contains(host)) {
            log.warn(
                    "refused {} {}: Host '{}' is not allowed (ubd.security.allowed-hosts)",
                    request.getMethod(),
                    request.getPath(),
                    clean(hostHeader));
            return refuse(
                    exchange,
                    HttpStatus.MISDIRECTED_REQUEST,
                    "Host not allowed",
                    "this service answers "
                            + "only to the names it is configured with (localhost, 127.0.0.1, [::1] and "
                            + "ubd.security.allowed-hosts)");
        }
        String origin = request.getHeaders().getOrigin();
        if (origin != null && !SAFE.contains(request.getMethod()) && !sameOrigin(origin, request, hostHeader)) {
            log.warn(
                    "refused {} {}: cross-origin request from '{}'",
                    request.getMethod(),
                    request.getPath(),
                    clean(origin));
            return refuse(
                    exchange,
                    HttpStatus.FORBIDDEN,
                    "Cross-origin request",
                    "requests that change something " + "are accepted only from this service's own page");
        }
        return chain.filter(exchange);
    }

    /** The name of a Host header value, lower case, without port or IPv6 brackets; null when malformed. */
    static String hostName(String hostHeader) {
        String h = hostHeader.strip().toLowerCase(Locale.ROOT);
        if (h.startsWith("[")) {
            int end = h.indexOf(']');
            return end < 0 ? null : h.substring(1, end);
        }
        int colon = h.indexOf(':');
        return colon < 0 ? h : h.substring(0, colon);
    }

    private static String unbracket(String h) {
        return h.startsWith("[") && h.endsWith("]") ? h.substring(1, h.length() - 1) : h;
    }

    /** Whether an Origin is the scheme, host and port this request came to. */
    static boolean sameOrigin(String origin, ServerHttpRequest request, String hostHeader) {
        String scheme = request.getSslInfo() != null ? "https" : "http";
        try {
            URI o = new URI(origin);
            URI self = new URI(scheme + "://" + hostHeader.strip());
            return scheme.equalsIgnoreCase(o.getScheme())
                    && o.getHost() != null
                    && self.getHost() != null
                    && o.getHost().equalsIgnoreCase(self.getHost())
                    && port(o) == port(self)
                    && (o.getPath() == null || o.getPath().isEmpty());
        } catch (URISyntaxException e) {
            return false; // "null" (a sandboxed or file page) and anything unparsable
        }
    }

    private static int port(URI u) {
        return u.getPort() >= 0 ? u.getPort() : "https".equalsIgnoreCase(u.getScheme()) ? 443 : 80;
    }

    /** A header value fit for one log line (no control characters, bounded). */
    private static String clean(String s) {
        if (s == null) {
            return "(none)";
        }
        String c = s.replaceAll("\\p{Cntrl}", "?");
        return c.length() > 200 ? c.substring(0, 200) + "..." : c;
    }

    private static Mono<Void> refuse(ServerWebExchange exchange, HttpStatus status, String title, String detail) {
        ServerHttpResponse response = exchange.getResponse();
        response.setStatusCode(status);
        response.getHeaders().setContentType(MediaType.APPLICATION_PROBLEM_JSON);
        String body = "{\"type\":\"about:blank\",\"title\":\"" + title + "\",\"status\":" + status.value()
                + ",\"detail\":\"" + detail + "\"}";
        return response.writeWith(Mono.just(response.bufferFactory().wrap(body.getBytes(StandardCharsets.UTF_8))));
    }
}

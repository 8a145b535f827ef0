package dev.reactorubd.management;

import dev.reactorubd.spring.boot.TargetPolicyProperties;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatus;
import org.springframework.http.server.reactive.SslInfo;
import org.springframework.security.authentication.BadCredentialsException;
import org.springframework.security.authentication.ReactiveAuthenticationManager;
import org.springframework.security.authentication.UserDetailsRepositoryReactiveAuthenticationManager;
import org.springframework.security.authentication.UsernamePasswordAuthenticationToken;
import org.springframework.security.config.annotation.web.reactive.EnableWebFluxSecurity;
import org.springframework.security.config.web.server.SecurityWebFiltersOrder;
import org.springframework.security.config.web.server.ServerHttpSecurity;
import org.springframework.security.core.Authentication;
import org.springframework.security.core.context.SecurityContext;
import org.springframework.security.core.userdetails.ReactiveUserDetailsService;
import org.springframework.security.core.userdetails.User;
import org.springframework.security.web.authentication.preauth.x509.SubjectX500PrincipalExtractor;
import org.springframework.security.web.server.DelegatingServerAuthenticationEntryPoint;
import org.springframework.security.web.server.SecurityWebFilterChain;
import org.springframework.security.web.server.ServerAuthenticationEntryPoint;
import org.springframework.security.web.server.authentication.AuthenticationWebFilter;
import org.springframework.security.web.server.authentication.RedirectServerAuthenticationEntryPoint;
import org.springframework.security.web.server.authentication.ServerAuthenticationEntryPointFailureHandler;
import org.springframework.security.web.server.context.NoOpServerSecurityContextRepository;
import org.springframework.security.web.server.context.ServerSecurityContextRepository;
import org.springframework.security.web.server.context.WebSessionServerSecurityContextRepository;
import org.springframework.security.web.server.csrf.CookieServerCsrfTokenRepository;
import org.springframework.security.web.server.csrf.CsrfToken;
import org.springframework.security.web.server.csrf.CsrfWebFilter;
import org.springframework.security.web.server.csrf.ServerCsrfTokenRequestAttributeHandler;
import org.springframework.security.web.server.header.ReferrerPolicyServerHttpHeadersWriter;
import org.springframework.security.web.server.header.XFrameOptionsServerHttpHeadersWriter;
import org.springframework.security.web.server.savedrequest.NoOpServerRequestCache;
import org.springframework.security.web.server.util.matcher.ServerWebExchangeMatcher;
import org.springframework.security.web.server.util.matcher.ServerWebExchangeMatchers;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import reactor.core.publisher.Mono;

/**
 * Who may call the service, and what the page may do in a browser. Closed by default: every {@code /api} and
 * {@code /actuator} request but the liveness probe needs credentials, and there are none until
 * {@code ubd.security.credentials-file} names a file of them.
 * <ul>
 *   <li>Credentials: a bearer token ({@code Authorization: Bearer ubd_...}, for scripts; no session, no CSRF token), a
 *       page user (form login at {@code /login}, then a session cookie, and a CSRF token on every POST and DELETE),
 *       or a client certificate ({@code server.ssl.client-auth=need}; its CN mapped to a role by
 *       {@code ubd.security.mtls.*}).</li>
 *   <li>Roles ({@link Role}): a READER may GET under {@code /api} (list, inspect, statistics streams) and
 *       {@code /actuator} (health, metrics, Prometheus); an OPERATOR may also POST, PUT and DELETE under {@code /api}
 *       (create, delete, reinstate).</li>
 *   <li>Unauthenticated: 401 for {@code /api} and {@code /actuator} (with {@code WWW-Authenticate: Bearer}), a
 *       redirect to the login page for the page itself; a role too weak: 403.</li>
 *   <li>Before all of it, {@link HostOriginFilter} refuses a foreign Host (421) and a cross-origin POST, PUT, PATCH or
 *       DELETE (403).</li>
 *   <li>Headers on every answer: a Content-Security-Policy that allows only the service's own scripts (none inline),
 *       styles and connections and no framing; X-Frame-Options DENY; X-Content-Type-Options nosniff; no
 *       referrer to other sites.</li>
 * </ul>
 */
@Configuration(proxyBeanMethods = false)
@EnableWebFluxSecurity
@EnableConfigurationProperties({SecurityProperties.class, TargetPolicyProperties.class})
public class SecurityConfiguration {
    private static final Logger log = LoggerFactory.getLogger(SecurityConfiguration.class);
    /** The page's policy: its own files only; canvas charts need no more. */
    static final String CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; "
            + "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    /**
     * The credentials, read once at start; the start fails with a {@link CredentialsFileException} for a file that
     * others than its owner can read.
     *
     * @param properties {@code ubd.security.*}
     * @return the tokens and users
     */
    @Bean
    public Credentials credentials(SecurityProperties properties) {
        if (properties.credentialsFile() == null) {
            log.warn("no ubd.security.credentials-file: every /api and /actuator request is refused (401) until one "
                    + "is configured (docs/security.md)");
            return Credentials.none();
        }
        Credentials c = Credentials.load(properties.credentialsFile());
        log.info(
                "credentials from {}: {} token(s), {} user(s)",
                properties.credentialsFile(),
                c.tokenCount(),
                c.users().size());
        return c;
    }

    /**
     * The page's users (which also keeps Spring Boot from making a default user with a logged password).
     *
     * @param credentials the users
     * @return them, looked up by name
     */
    @Bean
    public ReactiveUserDetailsService users(Credentials credentials) {
        // A copy per login: Spring may erase the password of what it authenticated.
        return name -> Mono.justOrEmpty(credentials.users().get(name))
                .map(u -> User.withUserDetails(u).build());
    }

    /**
     * The Host and Origin checks, before Spring Security's filters (order -100).
     *
     * @param properties the allowed host names
     * @return the filter
     */
    @Bean
    public HostOriginFilter hostOriginFilter(SecurityProperties properties) {
        return new HostOriginFilter(properties.allowedHosts());
    }

    /**
     * Makes the CSRF cookie ({@code XSRF-TOKEN}) on every page load, for the page's scripts to send back in
     * {@code X-XSRF-TOKEN}: Spring Security makes the token only when something asks for it.
     *
     * @return the filter
     */
    @Bean
    public WebFilter csrfCookieFilter() {
        return (exchange, chain) -> {
            String path = exchange.getRequest().getPath().value();
            Mono<CsrfToken> token = exchange.getAttribute(CsrfToken.class.getName());
            if (token == null
                    || exchange.getRequest().getMethod() != HttpMethod.GET
                    || path.startsWith("/api/")
                    || path.startsWith("/actuator/")) {
                return chain.filter(exchange);
            }
            return token.then(chain.filter(exchange));
        };
    }

    /**
     * The rules above.
     *
     * @param http        Spring Security's builder
     * @param credentials the tokens
     * @param users       the page's users
     * @param properties  the client certificates' roles
     * @return the chain
     */
    @Bean
    public SecurityWebFilterChain securityChain(
            ServerHttpSecurity http,
            Credentials credentials,
            ReactiveUserDetailsService users,
            SecurityProperties properties) {
        ServerAuthenticationEntryPoint unauthorized = (exchange, e) -> {
            var response = exchange.getResponse();
            response.setStatusCode(HttpStatus.UNAUTHORIZED);
            response.getHeaders().set(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"reactor-ubd\"");
            return response.setComplete();
        };
        ServerWebExchangeMatcher api = ServerWebExchangeMatchers.pathMatchers("/api/**", "/actuator/**");
        DelegatingServerAuthenticationEntryPoint entryPoint = new DelegatingServerAuthenticationEntryPoint(
                new DelegatingServerAuthenticationEntryPoint.DelegateEntry(api, unauthorized),
                new DelegatingServerAuthenticationEntryPoint.DelegateEntry(
                        SecurityConfiguration::hasBearer, unauthorized));
        entryPoint.setDefaultEntryPoint(new RedirectServerAuthenticationEntryPoint("/login"));

        AuthenticationWebFilter bearer = new AuthenticationWebFilter(bearerManager(credentials));
        bearer.setServerAuthenticationConverter(exchange -> {
            String h = exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION);
            if (h == null || !h.regionMatches(true, 0, "Bearer ", 0, 7)) {
                return Mono.empty();
            }
            return Mono.just(UsernamePasswordAuthenticationToken.unauthenticated(
                    "bearer", h.substring(7).strip()));
        });
        // A token authenticates its own request only: no session is made or read for it.
        bearer.setSecurityContextRepository(NoOpServerSecurityContextRepository.getInstance());
        bearer.setAuthenticationFailureHandler(new ServerAuthenticationEntryPointFailureHandler(unauthorized));

        CookieServerCsrfTokenRepository csrfTokens = CookieServerCsrfTokenRepository.withHttpOnlyFalse();
        csrfTokens.setCookieCustomizer(c -> c.sameSite("Strict"));
        return http.authorizeExchange(ex -> ex.pathMatchers("/actuator/health/liveness", "/login", "/app.css")
                        .permitAll()
                        .pathMatchers(HttpMethod.GET, "/api/**", "/actuator/**")
                        .hasRole(Role.READER.name())
                        .pathMatchers(HttpMethod.HEAD, "/api/**", "/actuator/**")
                        .hasRole(Role.READER.name())
                        .pathMatchers("/api/**", "/actuator/**")
                        .hasRole(Role.OPERATOR.name())
                        .anyExchange()
                        .hasRole(Role.READER.name()))
                .addFilterAt(bearer, SecurityWebFiltersOrder.AUTHENTICATION)
                .x509(x -> x.principalExtractor(new SubjectX500PrincipalExtractor())
                        .authenticationManager(certificateManager(properties.mtls())))
                .formLogin(f -> f.loginPage("/login")
                        .securityContextRepository(new SessionCookieContextRepository())
                        .authenticationManager(new UserDetailsRepositoryReactiveAuthenticationManager(users)))
                .httpBasic(ServerHttpSecurity.HttpBasicSpec::disable)
                // A session is looked up only for a request that has one: making an empty session for every token
                // request would move it off its event loop (Spring's in-memory session store publishes on parallel
                // threads). After login the page is always "/", so no request is kept in a session to return to.
                .securityContextRepository(new SessionCookieContextRepository())
                .requestCache(r -> r.requestCache(NoOpServerRequestCache.getInstance()))
                .csrf(c -> c.csrfTokenRepository(csrfTokens)
                        // The page sends the cookie's value as it is (no BREACH masking: the token is in no body).
                        .csrfTokenRequestHandler(new ServerCsrfTokenRequestAttributeHandler())
                        .requireCsrfProtectionMatcher(SecurityConfiguration::needsCsrfToken))
                .exceptionHandling(e -> e.authenticationEntryPoint(entryPoint))
                .headers(h -> h.contentSecurityPolicy(p -> p.policyDirectives(CONTENT_SECURITY_POLICY))
                        .frameOptions(f -> f.mode(XFrameOptionsServerHttpHeadersWriter.Mode.DENY))
                        // same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on the page's
                        // own form posts, which the Origin check would refuse.
                        .referrerPolicy(
                                r -> r.policy(ReferrerPolicyServerHttpHeadersWriter.ReferrerPolicy.SAME_ORIGIN)))
                .build();
    }

    private static Mono<ServerWebExchangeMatcher.MatchResult> hasBearer(ServerWebExchange exchange) {
        String h = exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION);
        return h != null && h.regionMatches(true, 0, "Bearer ", 0, 7)
                ? ServerWebExchangeMatcher.MatchResult.match()
                : ServerWebExchangeMatcher.MatchResult.notMatch();
    }

    /**
     * A state-changing request needs a CSRF token when it could ride on a browser's session: it carries cookies, or
     * it is the login itself (so that no other site can sign a browser in under its own account). Not when it
     * carries its own credentials: a bearer token (which a browser never adds by itself; a cross-site page cannot set
     * the header without a CORS preflight, which is refused) or a client certificate (whose cross-origin use
     * {@link HostOriginFilter}'s Origin check stops). A script's request without cookies gets 401 or 403 from the
     * authorization rules, not a CSRF refusal.
     */
    private static Mono<ServerWebExchangeMatcher.MatchResult> needsCsrfToken(ServerWebExchange exchange) {
        return CsrfWebFilter.DEFAULT_CSRF_MATCHER.matches(exchange).flatMap(m -> {
            if (!m.isMatch()) {
                return Mono.just(m);
            }
            var request = exchange.getRequest();
            SslInfo ssl = request.getSslInfo();
            boolean certificate =
                    ssl != null && ssl.getPeerCertificates() != null && ssl.getPeerCertificates().length > 0;
            String path = request.getPath().pathWithinApplication().value();
            boolean session = !request.getCookies().isEmpty() || path.equals("/login") || path.equals("/logout");
            return hasBearer(exchange)
                    .flatMap(b -> b.isMatch() || certificate || !session
                            ? ServerWebExchangeMatcher.MatchResult.notMatch()
                            : ServerWebExchangeMatcher.MatchResult.match());
        });
    }

    /** A bearer token's secret to its name and role; an unknown one is refused (401). */
    static ReactiveAuthenticationManager bearerManager(Credentials credentials) {
        return auth -> Mono.defer(() -> credentials
                        .token(String.valueOf(auth.getCredentials()))
                        .map(t -> Mono.just(UsernamePasswordAuthenticationToken.authenticated(
                                "token:" + t.name(), null, t.role().authorities())))
                        .orElseGet(() -> Mono.error(new BadCredentialsException("unknown bearer token"))))
                .cast(Authentication.class);
    }

    /** A client certificate's CN (its chain already checked by TLS against the trusted CA) to a role. */
    static ReactiveAuthenticationManager certificateManager(SecurityProperties.Mtls mtls) {
        return auth -> Mono.defer(() -> {
            String cn = String.valueOf(auth.getPrincipal());
            Role role = mtls.operators().contains(cn)
                    ? Role.OPERATOR
                    : mtls.readers().contains(cn) ? Role.READER : null;
            if (role == null) {
                log.warn(
                        "client certificate CN={} has no role: refused (ubd.security.mtls.operators, readers)",
                        cn.replaceAll("\\p{Cntrl}", "?"));
                return Mono.error(new BadCredentialsException("certificate CN has no role"));
            }
            return Mono.just(UsernamePasswordAuthenticationToken.authenticated("cert:" + cn, null, role.authorities()));
        });
    }

    /** The page's sessions: stored in the WebSession, read only when the request has a session cookie. */
    static final class SessionCookieContextRepository implements ServerSecurityContextRepository {
        /** Spring's WebFlux session cookie (server.reactive.session.cookie.name is not set by this service). */
        static final String COOKIE = "SESSION";

        private final WebSessionServerSecurityContextRepository sessions =
                new WebSessionServerSecurityContextRepository();

        @Override
        public Mono<Void> save(ServerWebExchange exchange, SecurityContext context) {
            return sessions.save(exchange, context);
        }

        @Override
        public Mono<SecurityContext> load(ServerWebExchange exchange) {
            return exchange.getRequest().getCookies().containsKey(COOKIE) ? sessions.load(exchange) : Mono.empty();
        }
    }
}

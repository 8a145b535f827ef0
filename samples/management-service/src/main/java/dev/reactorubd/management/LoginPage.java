package dev.reactorubd.management;

import org.springframework.http.MediaType;
import org.springframework.security.web.server.csrf.CsrfToken;
import org.springframework.stereotype.Controller;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.ResponseBody;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.util.HtmlUtils;
import reactor.core.publisher.Mono;

/**
 * The login page ({@code GET /login}): a form posting name and password to {@code /login} (Spring Security's form
 * login, then a session cookie) with the CSRF token in a hidden field. No script, no inline style: the page's CSP
 * holds here too.
 */
@Controller
public class LoginPage {
    /**
     * The page; says why when it is shown again after a failed login ({@code ?error}) or a logout ({@code ?logout}).
     *
     * @param exchange the request, for its CSRF token and query
     * @return the HTML
     */
    @GetMapping(path = "/login", produces = MediaType.TEXT_HTML_VALUE)
    @ResponseBody
    public Mono<String> page(ServerWebExchange exchange) {
        Mono<CsrfToken> token = exchange.getAttributeOrDefault(CsrfToken.class.getName(), Mono.empty());
        var query = exchange.getRequest().getQueryParams();
        String note = query.containsKey("error")
                ? "<p id=\"login-error\" class=\"error\" role=\"alert\">Wrong name or " + "password.</p>"
                : query.containsKey("logout") ? "<p class=\"hint\">Signed out.</p>" : "";
        return token.map(t ->
                """
                <!DOCTYPE html>
                <html lang="en">
                <head>
                <meta charset="utf-8">
                <title>reactor-ubd: sign in</title>
                <link rel="stylesheet" href="app.css">
                </head>
                <body>
                <header><h1>reactor-ubd devices</h1></header>
                <section class="create">
                  <h2>Sign in</h2>
                  %s
                  <form id="login-form" method="post" action="/login">
                    <label>Name <input id="username" name="username" autocomplete="username" required autofocus></label>
                    <label>Password <input id="password" name="password" type="password"
                      autocomplete="current-password" required></label>
                    <input type="hidden" name="%s" value="%s">
                    <button id="sign-in" type="submit">Sign in</button>
                  </form>
                  <p class="hint">Scripts use a bearer token instead (docs/security.md).</p>
                </section>
                </body>
                </html>
                """.formatted(note, HtmlUtils.htmlEscape(t.getParameterName()), HtmlUtils.htmlEscape(t.getToken())));
    }
}

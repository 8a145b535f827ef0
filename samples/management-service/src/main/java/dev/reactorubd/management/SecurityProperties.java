package dev.reactorubd.management;

import java.nio.file.Path;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * {@code ubd.security.*}: who may call the service ({@link SecurityConfiguration}).
 *
 * @param credentialsFile the owner-only file of bearer tokens and page users ({@link Credentials}); unset: none, so
 *                        that every request but the liveness probe is refused until one is configured
 * @param allowedHosts    Host header names accepted besides {@code localhost}, {@code 127.0.0.1} and {@code [::1]}
 *                        (the names clients use to reach the service, e.g. {@code ubd.example.org}); a request for any
 *                        other name is refused with 421, which stops DNS rebinding
 * @param mtls            client certificates: common names mapped to roles
 */
@ConfigurationProperties("ubd.security")
public record SecurityProperties(
        Path credentialsFile,
        @DefaultValue List<String> allowedHosts,
        @DefaultValue Mtls mtls) {
    /**
     * Client certificates (with {@code server.ssl.client-auth=need} and {@code server.ssl.trust-certificate}): the
     * subject's CN of a certificate the trusted CA signed is mapped to a role; any other CN is refused (401).
     *
     * @param operators common names that are operators
     * @param readers   common names that are readers
     */
    public record Mtls(
            @DefaultValue List<String> operators,
            @DefaultValue List<String> readers) {}
}

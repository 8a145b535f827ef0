package dev.reactorubd.spring.boot;

import dev.reactorubd.server.UbdServer;

/**
 * Changes the {@link UbdServer.Builder} before the starter builds its server: a bean of this type is applied after
 * the starter's own settings ({@code ubd.*}, the meter registry, the shared loops), in bean order.
 */
@FunctionalInterface
public interface UbdServerCustomizer {
    /**
     * Changes the builder.
     *
     * @param builder the server's builder
     */
    void customize(UbdServer.Builder builder);
}

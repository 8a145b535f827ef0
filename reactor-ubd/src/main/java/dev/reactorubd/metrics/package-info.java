/**
 * Metrics of queues: the {@link dev.reactorubd.metrics.UbdMetrics} SPI with a no-op default, and
 * {@link dev.reactorubd.metrics.MicrometerMetrics}, used only when an application hands a Micrometer registry to
 * {@code UbdServer.Builder.meterRegistry} (Micrometer is an optional dependency).
 */
package dev.reactorubd.metrics;

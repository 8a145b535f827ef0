package dev.reactorubd.management;

/**
 * One device's statistics over the last sampling period (about a second), from its Micrometer meters, plus totals
 * since it was created. Latencies are null when no request completed in the period.
 */
public record DeviceStats(
        int id,
        double readIops,
        double writeIops,
        double readMBps,
        double writeMBps,
        int inFlight,
        Double p50Millis,
        Double p99Millis,
        long reads,
        long writes,
        long otherRequests,
        long errors,
        long readBytes,
        long writtenBytes) {}

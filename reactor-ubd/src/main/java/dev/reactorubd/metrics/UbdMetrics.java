package dev.reactorubd.metrics;

/**
 * Where a server's queues report what they serve: the metrics SPI. {@link #NONE} (the default) records nothing and
 * takes no timestamps; {@link MicrometerMetrics} records into a Micrometer {@code MeterRegistry}. The library core
 * refers only to this interface and {@link QueueMetrics}, so that Micrometer stays an optional dependency: its
 * classes are loaded only when an application asks for Micrometer metrics.
 *
 * <h2>Threading</h2>
 * {@link #forQueue} is called once per queue, from the thread that opens the device; the {@link QueueMetrics} it
 * returns is then called on that queue's event loop only.
 */
public interface UbdMetrics {
    /** Records nothing; queues skip their timestamps. */
    UbdMetrics NONE = queue -> QueueMetrics.NONE;

    /**
     * The recorder of one queue (called as the queue is created; the queue's {@link QueueView#inFlightCount()} and
     * {@link QueueView#waitingForDemand()} may be sampled from then on, from any thread).
     *
     * @param queue the queue being created
     * @return its recorder
     */
    QueueMetrics forQueue(QueueView queue);
}

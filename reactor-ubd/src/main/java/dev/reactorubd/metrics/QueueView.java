package dev.reactorubd.metrics;

/**
 * What a metrics recorder may see of the queue it records: who it is and two gauges. The queue implements it, so that
 * the metrics SPI does not depend on the queue's class.
 */
public interface QueueView {
    /** {@return the id of the device the queue belongs to} */
    int deviceId();

    /** {@return the queue id, from 0} */
    int id();

    /**
     * Requests the kernel handed to the queue that are not answered yet.
     *
     * @return the count at the time of the call, readable from any thread
     */
    int inFlightCount();

    /**
     * Requests waiting for the subscriber's demand now.
     *
     * @return a sample, readable from any thread
     */
    int waitingForDemand();
}

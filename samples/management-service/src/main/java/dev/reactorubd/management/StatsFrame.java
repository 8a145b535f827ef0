package dev.reactorubd.management;

import java.time.Instant;
import java.util.List;

/** One event of the statistics stream: every live device's {@link DeviceStats} at one time. */
public record StatsFrame(Instant time, List<DeviceStats> devices) {}

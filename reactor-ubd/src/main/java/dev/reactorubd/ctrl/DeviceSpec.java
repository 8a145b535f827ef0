package dev.reactorubd.ctrl;

import dev.reactorubd.InvalidDeviceSpecException;
import dev.reactorubd.sys.UblkIo;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

/**
 * What a ublk device should look like: queues and their depth, block sizes, capacity, largest IO, attributes,
 * discard limits, the kernel features to request, and the device id (or automatic).
 *
 * <p>{@link Builder#build()} checks every field and every combination the kernel would refuse, and throws
 * {@link InvalidDeviceSpecException} naming the field and the reason, so that bad input never reaches the kernel.
 * A spec is immutable. {@link UblkFeature#USER_COPY} is always requested: it is how this library moves data.
 */
public final class DeviceSpec {
    /** Ask the kernel to pick a free device id. */
    public static final int AUTO_ID = -1;
    /** Largest device id the driver accepts, plus one ({@code UBLK_MAX_UBLKS}, the minor space). */
    public static final int MAX_DEVICE_IDS = 1 << 20;
    /**
     * The most queues a device can have ({@code UBLK_MAX_NR_QUEUES}); the kernel may grant fewer (one per CPU at most).
     */
    public static final int MAX_QUEUES = UblkIo.MAX_NR_QUEUES;
    /** The most tags per queue ({@code UBLK_MAX_QUEUE_DEPTH}). */
    public static final int MAX_DEPTH = UblkIo.MAX_QUEUE_DEPTH;
    /** The largest request by default: 512 KiB. */
    public static final long DEFAULT_MAX_IO_BYTES = 512 * 1024;

    /** Features a caller may request; the rest are either always set by this library or not usable with it. */
    private static final Set<UblkFeature> REQUESTABLE = Collections.unmodifiableSet(EnumSet.of(
            UblkFeature.USER_COPY,
            UblkFeature.USER_RECOVERY,
            UblkFeature.USER_RECOVERY_REISSUE,
            UblkFeature.USER_RECOVERY_FAIL_IO,
            UblkFeature.URING_CMD_COMP_IN_TASK,
            UblkFeature.CMD_IOCTL_ENCODE,
            UblkFeature.UPDATE_SIZE,
            UblkFeature.QUIESCE,
            UblkFeature.SAFE_STOP_DEV,
            UblkFeature.NO_AUTO_PART_SCAN,
            UblkFeature.AUTO_BUF_REG));

    private final int deviceId;
    private final int queues;
    private final int depth;
    private final int logicalBlockSize;
    private final int physicalBlockSize;
    private final long capacityBytes;
    private final long maxIoBytes;
    private final boolean readOnly;
    private final boolean rotational;
    private final boolean volatileCache;
    private final boolean fua;
    private final Discard discard;
    private final Set<UblkFeature> features;

    /**
     * Discard and write-zeroes limits; a device without them gets no DISCARD or WRITE_ZEROES requests.
     *
     * @param granularityBytes     smallest unit the backend can discard: a positive multiple of the logical block
     *                             size
     * @param alignmentBytes       offset of the first aligned unit, a multiple of 512, below the granularity
     * @param maxDiscardBytes      largest single DISCARD, a multiple of 512 (0: no DISCARD)
     * @param maxWriteZeroesBytes  largest single WRITE_ZEROES, a multiple of 512 (0: no WRITE_ZEROES)
     */
    public record Discard(long granularityBytes, long alignmentBytes, long maxDiscardBytes, long maxWriteZeroesBytes) {}

    private DeviceSpec(Builder b) {
        this.deviceId = b.deviceId;
        this.queues = b.queues;
        this.depth = b.depth;
        this.logicalBlockSize = b.logicalBlockSize;
        this.physicalBlockSize = b.physicalBlockSize == 0 ? b.logicalBlockSize : b.physicalBlockSize;
        this.capacityBytes = b.capacityBytes;
        this.maxIoBytes = b.maxIoBytes;
        this.readOnly = b.readOnly;
        this.rotational = b.rotational;
        this.volatileCache = b.volatileCache;
        this.fua = b.fua;
        this.discard = b.discard;
        EnumSet<UblkFeature> f = b.features.isEmpty() ? EnumSet.noneOf(UblkFeature.class) : EnumSet.copyOf(b.features);
        f.add(UblkFeature.USER_COPY);
        this.features = Collections.unmodifiableSet(f);
    }

    /**
     * A builder with the defaults: kernel-chosen id, one queue of depth 128, 512-byte blocks (physical as logical),
     * writable, non-rotational, no volatile cache, no discard. Only the capacity must be set.
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * A builder holding this spec's values, to derive a changed copy.
     *
     * @return a new builder
     */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.deviceId = deviceId;
        b.queues = queues;
        b.depth = depth;
        b.logicalBlockSize = logicalBlockSize;
        b.physicalBlockSize = physicalBlockSize;
        b.capacityBytes = capacityBytes;
        b.maxIoBytes = maxIoBytes;
        b.readOnly = readOnly;
        b.rotational = rotational;
        b.volatileCache = volatileCache;
        b.fua = fua;
        b.discard = discard;
        b.features = EnumSet.copyOf(features);
        return b;
    }

    /** {@return the device id to ask for, or {@link #AUTO_ID}} */
    public int deviceId() {
        return deviceId;
    }

    /** {@return the number of hardware queues asked for} */
    public int queues() {
        return queues;
    }

    /** {@return the tags per queue: requests in flight per queue at most} */
    public int depth() {
        return depth;
    }

    /** {@return the logical block size in bytes: the unit of every offset and length} */
    public int logicalBlockSize() {
        return logicalBlockSize;
    }

    /** {@return the physical block size in bytes} */
    public int physicalBlockSize() {
        return physicalBlockSize;
    }

    /** {@return the device's size in bytes} */
    public long capacityBytes() {
        return capacityBytes;
    }

    /** {@return the largest request in bytes; the kernel splits larger ones} */
    public long maxIoBytes() {
        return maxIoBytes;
    }

    /** {@return whether the device is read-only} */
    public boolean readOnly() {
        return readOnly;
    }

    /** {@return whether the device says it is rotational (a hint to IO schedulers)} */
    public boolean rotational() {
        return rotational;
    }

    /** {@return whether the device has a volatile cache, so that the kernel sends FLUSH requests} */
    public boolean volatileCache() {
        return volatileCache;
    }

    /** {@return whether WRITEs may carry FUA (force unit access); needs a volatile cache} */
    public boolean fua() {
        return fua;
    }

    /** {@return the discard limits, or {@code null} when the device does not discard} */
    public Discard discard() {
        return discard;
    }

    /** {@return the features requested from the kernel; always holds {@link UblkFeature#USER_COPY}} */
    public Set<UblkFeature> features() {
        return features;
    }

    /** {@return the feature mask sent with ADD_DEV} */
    public long featureMask() {
        return UblkFeature.toMask(features);
    }

    @Override
    public String toString() {
        return "DeviceSpec[id=" + (deviceId == AUTO_ID ? "auto" : deviceId) + ", queues=" + queues + ", depth="
                + depth + ", blocks=" + logicalBlockSize + "/" + physicalBlockSize + ", capacity=" + capacityBytes
                + ", maxIo=" + maxIoBytes + (readOnly ? ", ro" : "") + (rotational ? ", rotational" : "")
                + (volatileCache ? ", volatile-cache" : "") + (fua ? ", fua" : "")
                + (discard != null ? ", " + discard : "") + ", features=" + features + "]";
    }

    /** Collects and checks the fields of a {@link DeviceSpec}. Not thread-safe. */
    public static final class Builder {
        private int deviceId = AUTO_ID;
        private int queues = 1;
        private int depth = 128;
        private int logicalBlockSize = 512;
        private int physicalBlockSize;
        private long capacityBytes = -1;
        private long maxIoBytes = DEFAULT_MAX_IO_BYTES;
        private boolean readOnly;
        private boolean rotational;
        private boolean volatileCache;
        private boolean fua;
        private Discard discard;
        private Set<UblkFeature> features = EnumSet.noneOf(UblkFeature.class);

        private Builder() {}

        /**
         * Sets the device id N of {@code /dev/ublkbN}, or {@link #AUTO_ID} to let the kernel pick.
         *
         * @param id the id, from 0 to {@link #MAX_DEVICE_IDS} - 1, or {@link #AUTO_ID}
         * @return this builder
         */
        public Builder deviceId(int id) {
            this.deviceId = id;
            return this;
        }

        /**
         * Sets the number of hardware queues, each served on one event loop.
         *
         * @param n from 1 to {@link #MAX_QUEUES}
         * @return this builder
         */
        public Builder queues(int n) {
            this.queues = n;
            return this;
        }

        /**
         * Sets the tags per queue: how many requests a queue has in flight at most.
         *
         * @param d from 1 to {@link #MAX_DEPTH}
         * @return this builder
         */
        public Builder depth(int d) {
            this.depth = d;
            return this;
        }

        /**
         * Sets the logical block size.
         *
         * @param bytes a power of two from 512 to the page size
         * @return this builder
         */
        public Builder logicalBlockSize(int bytes) {
            this.logicalBlockSize = bytes;
            return this;
        }

        /**
         * Sets the physical block size.
         *
         * @param bytes a power of two, at least the logical block size (the logical block size when not set)
         * @return this builder
         */
        public Builder physicalBlockSize(int bytes) {
            this.physicalBlockSize = bytes;
            return this;
        }

        /**
         * Sets the device's size.
         *
         * @param bytes a positive multiple of the logical block size
         * @return this builder
         */
        public Builder capacityBytes(long bytes) {
            this.capacityBytes = bytes;
            return this;
        }

        /**
         * Sets the largest request.
         *
         * @param bytes a multiple of the page size, {@link #DEFAULT_MAX_IO_BYTES} by default
         * @return this builder
         */
        public Builder maxIoBytes(long bytes) {
            this.maxIoBytes = bytes;
            return this;
        }

        /**
         * Makes the device read-only: the kernel refuses writes before they reach the backend.
         *
         * @param v whether it is read-only
         * @return this builder
         */
        public Builder readOnly(boolean v) {
            this.readOnly = v;
            return this;
        }

        /**
         * Marks the device rotational, a hint for IO schedulers.
         *
         * @param v whether it is rotational
         * @return this builder
         */
        public Builder rotational(boolean v) {
            this.rotational = v;
            return this;
        }

        /**
         * Says the device has a volatile cache, so that the kernel sends FLUSH requests (serve them with {@code
         * BlockBackend.Capability.FLUSH}).
         *
         * @param v whether it has one
         * @return this builder
         */
        public Builder volatileCache(boolean v) {
            this.volatileCache = v;
            return this;
        }

        /**
         * Lets WRITEs carry FUA (force unit access: durable when answered); needs a volatile cache.
         *
         * @param v whether FUA is allowed
         * @return this builder
         */
        public Builder fua(boolean v) {
            this.fua = v;
            return this;
        }

        /**
         * Sets the discard and write-zeroes limits, or none.
         *
         * @param d the limits, or {@code null} for a device that neither discards nor zeroes
         * @return this builder
         */
        public Builder discard(Discard d) {
            this.discard = d;
            return this;
        }

        /**
         * Sets the features to request from the kernel; {@link UblkFeature#USER_COPY} is always added.
         *
         * @param f the features
         * @return this builder
         */
        public Builder features(Set<UblkFeature> f) {
            this.features = EnumSet.noneOf(UblkFeature.class);
            this.features.addAll(Objects.requireNonNull(f, "features"));
            return this;
        }

        /**
         * Adds one feature to request from the kernel, such as {@link UblkFeature#USER_RECOVERY}.
         *
         * @param f the feature
         * @return this builder
         */
        public Builder feature(UblkFeature f) {
            this.features.add(Objects.requireNonNull(f, "feature"));
            return this;
        }

        /**
         * Checks every field and returns the spec.
         *
         * @return the spec, immutable
         * @throws InvalidDeviceSpecException naming the first field at fault and why
         */
        public DeviceSpec build() {
            if (deviceId != AUTO_ID && (deviceId < 0 || deviceId >= MAX_DEVICE_IDS)) {
                throw new InvalidDeviceSpecException(
                        "deviceId", "must be from 0 to " + (MAX_DEVICE_IDS - 1) + ", or AUTO_ID (-1); was " + deviceId);
            }
            if (queues < 1 || queues > MAX_QUEUES) {
                throw new InvalidDeviceSpecException("queues", "must be from 1 to " + MAX_QUEUES + "; was " + queues);
            }
            if (depth < 1 || depth > MAX_DEPTH) {
                throw new InvalidDeviceSpecException("depth", "must be from 1 to " + MAX_DEPTH + "; was " + depth);
            }
            checkBlockSize("logicalBlockSize", logicalBlockSize);
            int physical = physicalBlockSize == 0 ? logicalBlockSize : physicalBlockSize;
            checkBlockSize("physicalBlockSize", physical);
            if (physical < logicalBlockSize) {
                throw new InvalidDeviceSpecException(
                        "physicalBlockSize",
                        "must not be below the logical block size (" + logicalBlockSize + "); was " + physical);
            }
            if (capacityBytes == -1) {
                throw new InvalidDeviceSpecException("capacityBytes", "is required: set the device size in bytes");
            }
            if (capacityBytes <= 0 || capacityBytes % logicalBlockSize != 0) {
                throw new InvalidDeviceSpecException(
                        "capacityBytes",
                        "must be a positive multiple of the logical " + "block size (" + logicalBlockSize + "); was "
                                + capacityBytes);
            }
            if (maxIoBytes < 4096 || maxIoBytes > UblkIo.MAX_IO_BYTES || maxIoBytes % 4096 != 0) {
                throw new InvalidDeviceSpecException(
                        "maxIoBytes",
                        "must be a multiple of 4096 from 4096 to " + UblkIo.MAX_IO_BYTES
                                + " (32 MiB, the most USER_COPY can address); was " + maxIoBytes);
            }
            if (fua && !volatileCache) {
                throw new InvalidDeviceSpecException(
                        "fua",
                        "FUA only means something with a volatile write cache: "
                                + "set volatileCache(true) as well, or drop fua");
            }
            if (discard != null) {
                checkDiscard(discard);
            }
            checkFeatures();
            return new DeviceSpec(this);
        }

        private static void checkBlockSize(String field, int size) {
            if (size < 512 || size > 4096 || Integer.bitCount(size) != 1) {
                throw new InvalidDeviceSpecException(
                        field, "must be a power of two from 512 to 4096 (512, 1024, 2048 or 4096); was " + size);
            }
        }

        private void checkDiscard(Discard d) {
            if (readOnly) {
                throw new InvalidDeviceSpecException("discard", "a read-only device cannot discard: drop one");
            }
            if (d.granularityBytes() <= 0
                    || d.granularityBytes() % logicalBlockSize != 0
                    || d.granularityBytes() > 0xFFFF_FFFFL) {
                throw new InvalidDeviceSpecException(
                        "discard.granularityBytes",
                        "must be a positive multiple of the " + "logical block size (" + logicalBlockSize + "); was "
                                + d.granularityBytes());
            }
            if (d.alignmentBytes() < 0 || d.alignmentBytes() % 512 != 0 || d.alignmentBytes() >= d.granularityBytes()) {
                throw new InvalidDeviceSpecException(
                        "discard.alignmentBytes",
                        "must be a multiple of 512 below the " + "granularity (" + d.granularityBytes() + "); was "
                                + d.alignmentBytes());
            }
            checkSectors("discard.maxDiscardBytes", d.maxDiscardBytes());
            checkSectors("discard.maxWriteZeroesBytes", d.maxWriteZeroesBytes());
            if (d.maxDiscardBytes() == 0 && d.maxWriteZeroesBytes() == 0) {
                throw new InvalidDeviceSpecException(
                        "discard",
                        "allows neither DISCARD nor WRITE_ZEROES: set "
                                + "maxDiscardBytes or maxWriteZeroesBytes, or pass no discard limits");
            }
        }

        private static void checkSectors(String field, long bytes) {
            if (bytes < 0 || bytes % 512 != 0 || bytes / 512 > 0xFFFF_FFFFL) {
                throw new InvalidDeviceSpecException(
                        field, "must be a multiple of 512 below 2 TiB, or 0; was " + bytes);
            }
        }

        private void checkFeatures() {
            for (UblkFeature f : features) {
                if (!REQUESTABLE.contains(f)) {
                    throw new InvalidDeviceSpecException("features", f + " cannot be requested: " + whyNot(f));
                }
            }
            boolean recovery = features.contains(UblkFeature.USER_RECOVERY);
            if (features.contains(UblkFeature.USER_RECOVERY_REISSUE) && !recovery) {
                throw new InvalidDeviceSpecException("features", "USER_RECOVERY_REISSUE needs USER_RECOVERY as well");
            }
            if (features.contains(UblkFeature.USER_RECOVERY_FAIL_IO) && !recovery) {
                throw new InvalidDeviceSpecException("features", "USER_RECOVERY_FAIL_IO needs USER_RECOVERY as well");
            }
            if (features.contains(UblkFeature.USER_RECOVERY_FAIL_IO)
                    && features.contains(UblkFeature.USER_RECOVERY_REISSUE)) {
                throw new InvalidDeviceSpecException(
                        "features",
                        "USER_RECOVERY_REISSUE and USER_RECOVERY_FAIL_IO "
                                + "exclude each other: reissue in-flight IO to the next server, or fail it; pick one");
            }
            if (features.contains(UblkFeature.QUIESCE) && !recovery) {
                throw new InvalidDeviceSpecException("features", "QUIESCE needs USER_RECOVERY as well");
            }
        }

        private static String whyNot(UblkFeature f) {
            return switch (f) {
                case UNPRIVILEGED_DEV ->
                    "the kernel refuses USER_COPY, which this library needs, on unprivileged "
                            + "devices; run the server with CAP_SYS_ADMIN";
                case NEED_GET_DATA -> "it only matters without USER_COPY; this library always copies with USER_COPY";
                case SUPPORT_ZERO_COPY, BUF_REG_OFF_DAEMON, SHMEM_ZC ->
                    "this library's zero copy is AUTO_BUF_REG (Linux 6.16), which UbdServer requests itself for a "
                            + "backend with the ZERO_COPY capability; other data moves with USER_COPY";
                case ZONED -> "zoned devices are not supported by this library yet";
                case PER_IO_DAEMON, BATCH_IO ->
                    "this library serves each queue from one event loop with " + "per-tag commands";
                case INTEGRITY -> "integrity buffers are not supported by this library yet";
                default -> "not supported";
            };
        }
    }
}

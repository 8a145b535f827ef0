package dev.reactorubd.targets.nbd;

import io.netty.channel.EventLoopGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * How an {@link NbdBackend} connects and what it does when a connection is lost. Immutable; made with
 * {@link #builder()}; {@link #defaults()} are the values below.
 *
 * <h2>Bounds</h2>
 * <ul>
 *   <li>{@code connectTimeout} (default 10 s): one connection attempt, TCP (or Unix socket) connect plus the whole
 *       handshake. An attempt that takes longer is abandoned and counts as failed.</li>
 *   <li>{@code requestTimeout} (default 30 s): one request, from its submission to its reply, retries included. A
 *       request that runs out fails with {@code ETIMEDOUT}; when it was already sent, the connection it was sent on
 *       is closed too (a server that does not answer one request is not trusted with the others), and the other
 *       requests in flight there are handled as for a lost connection. Set it above the slowest answer the server
 *       may legitimately take (a FLUSH of a large cache).</li>
 * </ul>
 *
 * <h2>Retry policy</h2>
 * When a connection is lost (the server closed it, it died, the network failed, or a protocol error), the requests in
 * flight on it are not lost:
 * <ul>
 *   <li>With {@code reconnectAttempts} N &gt; 0 (default 5), they wait, with the requests that arrive meanwhile, while
 *       the backend reconnects: the first attempt at once, then after {@code backoffInitial} (default 100 ms), doubling
 *       up to {@code backoffMax} (default 5 s). Each attempt re-runs the handshake and checks that the export still
 *       has the same size. On success the waiting requests are sent again (reads and writes of a block device are
 *       idempotent). When N attempts have failed, every waiting request fails with {@code EIO}; the next request
 *       starts a fresh cycle of N attempts, so that service resumes once the server is back. A request's own
 *       {@code requestTimeout} still bounds its wait.</li>
 *   <li>With {@code reconnectAttempts} 0 ({@link Builder#noRetry()}), the requests in flight fail with {@code EIO}
 *       at once, and requests fail fast with {@code EIO} while there is no connection; each such request starts
 *       (at most once per {@code backoffInitial}) one reconnect attempt in the background, so that service resumes
 *       once the server is back.</li>
 * </ul>
 * A changed export size is never retried: the waiting requests fail with {@code EIO}.
 *
 * <h2>Connections</h2>
 * {@code multiConn} (default true): when the server advertises {@code NBD_FLAG_CAN_MULTI_CONN}, each queue of a
 * device gets its own connection on its own event loop ({@link NbdBackend#bind}). {@code eventLoopGroup}: the loops
 * of the backend's own connection (used by direct calls and queues that share); by default the backend starts one
 * io_uring loop thread (NIO where io_uring is not available), which {@link NbdBackend#close()} shuts down; a group
 * given here is the caller's to shut down.
 *
 * <h2>TLS</h2>
 * For {@code nbds://} and {@code nbds+unix://} URIs ({@link NbdUri}) without a {@code tls-certificates} parameter of
 * their own: {@code tlsCertificates} (a directory with {@code ca-cert.pem}, and {@code client-cert.pem} with {@code
 * client-key.pem} when the server wants a client certificate), or the files one by one with {@code tlsCaFile} and
 * {@code tlsClientCertificate}, which win over the directory's. A URI's {@code tls-certificates} wins over all of
 * these. Not used for plain {@code nbd://} URIs. The TLS handshake counts in {@code connectTimeout}.
 *
 * <h2>What a server may announce</h2>
 * {@code maxExportSize} (default 2^62 bytes): a larger export is refused when connecting. The handshake also refuses
 * block sizes outside the protocol's rules and a maximum block size below 4 KiB (see docs/security.md).
 */
public final class NbdOptions {
    private static final NbdOptions DEFAULTS = builder().build();

    private final Duration connectTimeout;
    private final Duration requestTimeout;
    private final int reconnectAttempts;
    private final Duration backoffInitial;
    private final Duration backoffMax;
    private final boolean multiConn;
    private final EventLoopGroup eventLoopGroup;
    private final Path tlsCertificates;
    private final Path tlsCaFile;
    private final Path tlsClientCertificate;
    private final Path tlsClientKey;
    private final long maxExportSize;

    private NbdOptions(Builder b) {
        this.tlsCertificates = b.tlsCertificates;
        this.tlsCaFile = b.tlsCaFile;
        this.tlsClientCertificate = b.tlsClientCertificate;
        this.tlsClientKey = b.tlsClientKey;
        this.maxExportSize = b.maxExportSize;
        this.connectTimeout = b.connectTimeout;
        this.requestTimeout = b.requestTimeout;
        this.reconnectAttempts = b.reconnectAttempts;
        this.backoffInitial = b.backoffInitial;
        this.backoffMax = b.backoffMax;
        this.multiConn = b.multiConn;
        this.eventLoopGroup = b.eventLoopGroup;
    }

    /**
     * {@return the defaults: 10 s connect, 30 s per request, 5 reconnect attempts, backoff 100 ms to 5 s, multi-conn}
     */
    public static NbdOptions defaults() {
        return DEFAULTS;
    }

    /**
     * A builder starting from the defaults.
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * A builder holding these options, to change some.
     *
     * @return this builder
     */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.connectTimeout = connectTimeout;
        b.requestTimeout = requestTimeout;
        b.reconnectAttempts = reconnectAttempts;
        b.backoffInitial = backoffInitial;
        b.backoffMax = backoffMax;
        b.multiConn = multiConn;
        b.eventLoopGroup = eventLoopGroup;
        b.tlsCertificates = tlsCertificates;
        b.tlsCaFile = tlsCaFile;
        b.tlsClientCertificate = tlsClientCertificate;
        b.tlsClientKey = tlsClientKey;
        b.maxExportSize = maxExportSize;
        return b;
    }

    /** {@return the bound on one connection attempt, connect and handshake (default 10 s)} */
    public Duration connectTimeout() {
        return connectTimeout;
    }

    /** {@return the bound on one request, from submission to reply, reconnection waits included (default 30 s)} */
    public Duration requestTimeout() {
        return requestTimeout;
    }

    /** {@return reconnect attempts per cycle; 0 turns retry off} */
    public int reconnectAttempts() {
        return reconnectAttempts;
    }

    /** {@return the wait before the second reconnect attempt of a cycle (default 100 ms)} */
    public Duration backoffInitial() {
        return backoffInitial;
    }

    /** {@return the longest wait between reconnect attempts (default 5 s)} */
    public Duration backoffMax() {
        return backoffMax;
    }

    /** {@return whether queues get connections of their own when the server allows it (default true)} */
    public boolean multiConn() {
        return multiConn;
    }

    /** {@return the caller's event loop group, or {@code null} when the backend starts its own} */
    public EventLoopGroup eventLoopGroup() {
        return eventLoopGroup;
    }

    /** {@return the directory of TLS credentials for {@code nbds} URIs without their own, or {@code null}} */
    public Path tlsCertificates() {
        return tlsCertificates;
    }

    /** {@return the CA certificate (PEM) for {@code nbds} URIs without their own credentials, or {@code null}} */
    public Path tlsCaFile() {
        return tlsCaFile;
    }

    /** {@return the client certificate (PEM) for {@code nbds} URIs without their own credentials, or {@code null}} */
    public Path tlsClientCertificate() {
        return tlsClientCertificate;
    }

    /** {@return the client certificate's key (PEM, PKCS#8), or {@code null}} */
    public Path tlsClientKey() {
        return tlsClientKey;
    }

    /** {@return the largest export size accepted from a server (default 2^62 bytes)} */
    public long maxExportSize() {
        return maxExportSize;
    }

    /** The wait before reconnect attempt {@code attempt} (1-based) of a cycle: none for the first, then doubling. */
    Duration backoffBefore(int attempt) {
        if (attempt <= 1) {
            return Duration.ZERO;
        }
        long initial = backoffInitial.toNanos();
        int shift = Math.min(attempt - 2, 30);
        long nanos = initial > (Long.MAX_VALUE >> shift) ? Long.MAX_VALUE : initial << shift;
        return Duration.ofNanos(Math.min(nanos, backoffMax.toNanos()));
    }

    @Override
    public String toString() {
        return "NbdOptions[connectTimeout=" + connectTimeout + ", requestTimeout=" + requestTimeout
                + ", reconnectAttempts=" + reconnectAttempts + ", backoff=" + backoffInitial + ".." + backoffMax
                + ", multiConn=" + multiConn + ", maxExportSize=" + maxExportSize
                + (tlsCertificates != null ? ", tlsCertificates=" + tlsCertificates : "")
                + (tlsCaFile != null ? ", tlsCaFile=" + tlsCaFile : "")
                + (tlsClientCertificate != null ? ", tlsClientCertificate=" + tlsClientCertificate : "")
                + (eventLoopGroup != null ? ", eventLoopGroup=" + eventLoopGroup : "")
                + "]";
    }

    /** Builds {@link NbdOptions}; each setter checks its value. */
    public static final class Builder {
        private Duration connectTimeout = Duration.ofSeconds(10);
        private Duration requestTimeout = Duration.ofSeconds(30);
        private int reconnectAttempts = 5;
        private Duration backoffInitial = Duration.ofMillis(100);
        private Duration backoffMax = Duration.ofSeconds(5);
        private boolean multiConn = true;
        private EventLoopGroup eventLoopGroup;
        private Path tlsCertificates;
        private Path tlsCaFile;
        private Path tlsClientCertificate;
        private Path tlsClientKey;
        private long maxExportSize = 1L << 62;

        private Builder() {}

        private static Duration positive(Duration d, String name) {
            Objects.requireNonNull(d, name);
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(name + " must be positive; was " + d);
            }
            return d;
        }

        /**
         * Bounds one connection attempt: connect plus the whole handshake (default 10 s).
         *
         * @param timeout a positive duration
         * @return this builder
         */
        public Builder connectTimeout(Duration timeout) {
            this.connectTimeout = positive(timeout, "connectTimeout");
            return this;
        }

        /**
         * Bounds one request, from its submission to its reply, reconnection waits included (default 30 s); a request
         * that runs out fails with ETIMEDOUT.
         *
         * @param timeout a positive duration
         * @return this builder
         */
        public Builder requestTimeout(Duration timeout) {
            this.requestTimeout = positive(timeout, "requestTimeout");
            return this;
        }

        /**
         * Reconnect attempts per cycle, 0 to 1000; 0 turns retry off (see the class comment).
         *
         * @param attempts the attempts after a lost connection before waiting requests fail with EIO
         * @return this builder
         */
        public Builder reconnectAttempts(int attempts) {
            if (attempts < 0 || attempts > 1000) {
                throw new IllegalArgumentException("reconnectAttempts must be from 0 to 1000; was " + attempts);
            }
            this.reconnectAttempts = attempts;
            return this;
        }

        /**
         * Retry off: requests fail with EIO as soon as the connection is lost, and fail fast while it is down.
         *
         * @return this builder
         */
        public Builder noRetry() {
            return reconnectAttempts(0);
        }

        /**
         * The wait before the second attempt of a cycle, doubling for each next one up to {@code max}.
         *
         * @param initial the first wait, positive
         * @param max the longest wait, at least {@code initial}
         * @return this builder
         */
        public Builder backoff(Duration initial, Duration max) {
            positive(initial, "backoff initial");
            positive(max, "backoff max");
            if (max.compareTo(initial) < 0) {
                throw new IllegalArgumentException("backoff max " + max + " is below its initial " + initial);
            }
            this.backoffInitial = initial;
            this.backoffMax = max;
            return this;
        }

        /**
         * Whether queues get their own connections when the server allows it (default true).
         *
         * @param multiConn whether to use one connection per queue when the server allows it
         * @return this builder
         */
        public Builder multiConn(boolean multiConn) {
            this.multiConn = multiConn;
            return this;
        }

        /**
         * The loops for the backend's own connection: an io_uring or NIO {@code MultiThreadIoEventLoopGroup}, which
         * the caller shuts down after closing the backend. Default: the backend's own single loop.
         *
         * @param group the io_uring event loops
         * @return this builder
         */
        public Builder eventLoopGroup(EventLoopGroup group) {
            this.eventLoopGroup = group;
            return this;
        }

        /**
         * The directory of TLS credentials for {@code nbds} URIs that name none ({@code tls-certificates}): {@code
         * ca-cert.pem}, and {@code client-cert.pem} with {@code client-key.pem} when the server wants a client
         * certificate.
         *
         * @param dir the directory, or {@code null} for none
         * @return this builder
         */
        public Builder tlsCertificates(Path dir) {
            this.tlsCertificates = dir;
            return this;
        }

        /**
         * The CA certificate (PEM) that the server's certificate must chain to, for {@code nbds} URIs that name no
         * credentials of their own; wins over {@link #tlsCertificates}' {@code ca-cert.pem}.
         *
         * @param caFile the file, or {@code null} for none
         * @return this builder
         */
        public Builder tlsCaFile(Path caFile) {
            this.tlsCaFile = caFile;
            return this;
        }

        /**
         * The client certificate and its key (PEM; the key unencrypted PKCS#8) offered when the server asks for one,
         * for {@code nbds} URIs that name no credentials of their own; wins over {@link #tlsCertificates}' files.
         *
         * @param certificate the certificate file, or {@code null} for none
         * @param key         its key, or {@code null} when {@code certificate} is
         * @return this builder
         * @throws IllegalArgumentException when only one of them is given
         */
        public Builder tlsClientCertificate(Path certificate, Path key) {
            if ((certificate == null) != (key == null)) {
                throw new IllegalArgumentException("tlsClientCertificate needs both a certificate and its key");
            }
            this.tlsClientCertificate = certificate;
            this.tlsClientKey = key;
            return this;
        }

        /**
         * The largest export a server may announce (default 2^62 bytes); a larger one is refused when connecting.
         *
         * @param bytes at least 1
         * @return this builder
         */
        public Builder maxExportSize(long bytes) {
            if (bytes < 1) {
                throw new IllegalArgumentException("maxExportSize must be positive; was " + bytes);
            }
            this.maxExportSize = bytes;
            return this;
        }

        /** {@return the options, immutable} */
        public NbdOptions build() {
            return new NbdOptions(this);
        }
    }
}

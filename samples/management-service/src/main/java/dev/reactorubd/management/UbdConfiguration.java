package dev.reactorubd.management;

import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.client.ReactorResourceFactory;

/**
 * Event loops shared by HTTP and devices, where {@code ubd.share-event-loops=true}: one Netty io_uring
 * {@link MultiThreadIoEventLoopGroup} (daemon threads {@code ubd-shared-N}, {@code ubd.event-loops} of them, default
 * one per CPU) on which Reactor Netty runs the HTTP server (an io_uring server channel, chosen by Reactor Netty for
 * an io_uring group) and {@link DeviceManager} runs the device queues ({@code UbdServer.create(group)}). The group is
 * shut down by {@link DeviceManager#shutdown()}, after the devices are closed (the HTTP server has stopped by then).
 */
@Configuration(proxyBeanMethods = false)
@ConditionalOnProperty(name = "ubd.share-event-loops", havingValue = "true")
public class UbdConfiguration {
    private static final Logger log = LoggerFactory.getLogger(UbdConfiguration.class);

    /** The shared io_uring loops. */
    @Bean(destroyMethod = "")
    public IoEventLoopGroup ubdSharedLoops(@Value("${ubd.event-loops:0}") int threads) {
        int n = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        log.info("HTTP and device queues share {} io_uring event loops", n);
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(
                n, new DefaultThreadFactory("ubd-shared", true), IoUringIoHandler.newFactory());
        return group;
    }

    /**
     * Runs the HTTP server on the shared loops: Spring Boot's Netty server takes its loops from this factory when it
     * starts (a server customizer's {@code runOn} would be overridden then). The factory does not own the loops.
     */
    @Bean
    public ReactorResourceFactory reactorResourceFactory(IoEventLoopGroup ubdSharedLoops) {
        ReactorResourceFactory factory = new ReactorResourceFactory();
        factory.setUseGlobalResources(false);
        factory.setLoopResources(useNative -> ubdSharedLoops);
        return factory;
    }
}

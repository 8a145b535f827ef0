package dev.reactorubd.spring.boot;

import dev.reactorubd.server.UbdServer;
import dev.reactorubd.targets.spec.TargetPolicy;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnExpression;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.health.contributor.ReactiveHealthIndicator;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.client.ReactorResourceFactory;

/**
 * The starter's beans, unless {@code ubd.enabled=false}:
 * <ul>
 *   <li>a {@link TargetPolicy} from {@code ubd.targets.*} ({@link TargetPolicyProperties}; closed by default);</li>
 *   <li>a {@link UbdServer} on io_uring loops of its own ({@code ubd.event-loops}), or, with
 *       {@code ubd.share-event-loops=true} in a WebFlux application, on the loops its Reactor Netty server runs on;
 *       with the application's {@code MeterRegistry} where it has one, and every {@link UbdServerCustomizer};</li>
 *   <li>{@link UbdDevices}, which serves {@code ubd.devices[N]} at start and deletes or hands them over at shutdown;</li>
 *   <li>{@link UbdHealthIndicator}, the {@code ubd} health component, where the application has Actuator.</li>
 * </ul>
 * The server is made when the context starts: without ublk_drv the start fails with the library's
 * {@code UbdModuleNotLoadedException}, which says to load it. Each bean backs off when the application defines its
 * own.
 */
@AutoConfiguration
@ConditionalOnClass(UbdServer.class)
@ConditionalOnProperty(name = "ubd.enabled", matchIfMissing = true)
@EnableConfigurationProperties({UbdProperties.class, TargetPolicyProperties.class})
public class UbdAutoConfiguration {
    /** Made by Spring. */
    public UbdAutoConfiguration() {}

    private static final Logger log = LoggerFactory.getLogger(UbdAutoConfiguration.class);

    /**
     * The policy the devices' targets are opened under.
     *
     * @param properties {@code ubd.targets.*}
     * @return the policy
     */
    @Bean
    @ConditionalOnMissingBean
    public TargetPolicy ubdTargetPolicy(TargetPolicyProperties properties) {
        return properties.toPolicy();
    }

    /**
     * The server; closed with the context, after the devices.
     *
     * @param properties  {@code ubd.*}
     * @param loops       the loops the starter made, if it made them
     * @param customizers the application's changes to the builder
     * @return the server
     */
    @Bean(destroyMethod = "close")
    @ConditionalOnMissingBean
    public UbdServer ubdServer(
            UbdProperties properties,
            ObjectProvider<UbdEventLoops> loops,
            ObjectProvider<UbdServerCustomizer> customizers) {
        UbdServer.Builder b = UbdServer.builder().requestTimeout(properties.requestTimeout());
        loops.ifAvailable(l -> b.eventLoops(l.group()));
        customizers.orderedStream().forEach(c -> c.customize(b));
        return b.build();
    }

    /**
     * The server's loops when their number is set or they are shared with the HTTP server (otherwise the server makes
     * its own, one per CPU); shut down after the server closed.
     *
     * @param properties {@code ubd.*}
     * @return the loops
     */
    @Bean(destroyMethod = "close")
    @ConditionalOnExpression("${ubd.share-event-loops:false} or ${ubd.event-loops:0} > 0")
    public UbdEventLoops ubdEventLoops(UbdProperties properties) {
        int n = properties.eventLoops() > 0
                ? properties.eventLoops()
                : Runtime.getRuntime().availableProcessors();
        if (properties.shareEventLoops()) {
            log.info("HTTP and device queues share {} io_uring event loops", n);
        }
        return new UbdEventLoops(new MultiThreadIoEventLoopGroup(
                n,
                new DefaultThreadFactory(properties.shareEventLoops() ? "ubd-shared" : "ubd-loop", true),
                IoUringIoHandler.newFactory()));
    }

    /**
     * The io_uring loops of the server, when the starter makes them.
     *
     * @param group the loops
     */
    public record UbdEventLoops(IoEventLoopGroup group) implements AutoCloseable {
        /** Shuts the loops down, within 10 s. */
        @Override
        public void close() {
            group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
        }
    }

    /**
     * The devices of {@code ubd.devices[N]}.
     *
     * @param server     the server
     * @param properties {@code ubd.*}
     * @param policy     the targets' policy
     * @return the devices, served when the context starts
     */
    @Bean
    @ConditionalOnMissingBean
    public UbdDevices ubdDevices(UbdServer server, UbdProperties properties, TargetPolicy policy) {
        return new UbdDevices(server, properties, policy);
    }

    /** The queues' meters in the application's registry. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(MeterRegistry.class)
    static class Metrics {
        @Bean
        UbdServerCustomizer ubdMeterRegistry(ObjectProvider<MeterRegistry> registry) {
            return b -> registry.ifAvailable(b::meterRegistry);
        }
    }

    /** The {@code ubd} health component. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(ReactiveHealthIndicator.class)
    static class HealthIndicator {
        @Bean(name = "ubdHealthIndicator")
        @ConditionalOnMissingBean(name = "ubdHealthIndicator")
        UbdHealthIndicator ubdHealthIndicator(UbdDevices devices) {
            return new UbdHealthIndicator(devices);
        }
    }

    /** {@code ubd.share-event-loops=true}: Reactor Netty's HTTP server and the devices on one io_uring group. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(ReactorResourceFactory.class)
    @ConditionalOnProperty(name = "ubd.share-event-loops", havingValue = "true")
    static class SharedLoops {
        /**
         * Spring Boot's Netty server takes its loops from this factory when it starts (a server customizer's
         * {@code runOn} would be overridden then). The factory does not own the loops.
         */
        @Bean
        @ConditionalOnMissingBean
        ReactorResourceFactory reactorResourceFactory(UbdEventLoops loops) {
            ReactorResourceFactory factory = new ReactorResourceFactory();
            factory.setUseGlobalResources(false);
            factory.setLoopResources(useNative -> loops.group());
            return factory;
        }
    }
}

/**
 * reactor-ubd: Linux block devices served from reactive code, through the kernel's ublk driver and io_uring.
 *
 * <p>What an embedder uses is exported: the API's own types (errno, operations, exceptions), the control plane
 * ({@code ctrl}), queues and requests ({@code io}), the metrics SPI, the server and its backend SPI, and the test kit.
 * The io_uring layer ({@code uring}: rings, libc calls that take raw addresses, Netty's glue) is exported only to the
 * targets module, whose file and NBD backends issue their own io_uring operations; the kernel ABI ({@code sys}) is
 * exported to no one.
 *
 * <p>This module calls restricted methods ({@code java.lang.foreign} downcalls): grant it native access, with
 * {@code --enable-native-access=dev.reactorubd} on the module path or {@code --enable-native-access=ALL-UNNAMED} on
 * the class path (README, "Native access").
 */
module dev.reactorubd {
    requires transitive io.netty.buffer;
    requires transitive io.netty.common;
    requires transitive io.netty.transport;
    requires transitive io.netty.transport.classes.io_uring;
    requires transitive org.reactivestreams;
    requires transitive reactor.core;
    requires org.slf4j;
    // Optional: only MicrometerMetrics, UbdServer.Builder.meterRegistry and VirtualDevice's registry need it.
    requires static micrometer.core;

    exports dev.reactorubd;
    exports dev.reactorubd.ctrl;
    exports dev.reactorubd.io;
    exports dev.reactorubd.metrics;
    exports dev.reactorubd.server;
    exports dev.reactorubd.testkit;
    exports dev.reactorubd.uring to
            dev.reactorubd.targets;
}

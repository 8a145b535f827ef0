package dev.reactorubd.management;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * The reactor-ubd management service: a Spring Boot WebFlux application that creates, lists, inspects and deletes
 * ublk devices over a JSON API ({@link DeviceController}), streams their statistics as server-sent events, serves a
 * live web page at {@code /}, and exposes the library's Micrometer meters at {@code /actuator/prometheus}.
 *
 * <p>Run as root on a kernel with {@code ublk_drv}: {@code java --enable-native-access=ALL-UNNAMED -jar ...}. With
 * {@code ubd.share-event-loops=true} the device queues run on the HTTP server's io_uring event loops
 * ({@link UbdConfiguration}).
 */
@SpringBootApplication
public class ManagementApplication {
    public static void main(String[] args) {
        SpringApplication.run(ManagementApplication.class, args);
    }
}

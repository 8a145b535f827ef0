package dev.reactorubd.management;

import dev.reactorubd.spring.boot.TargetPolicyProperties;
import dev.reactorubd.spring.boot.UbdAutoConfiguration;
import dev.reactorubd.targets.spec.TargetPolicy;
import java.io.BufferedReader;
import java.io.Console;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;

/**
 * The reactor-ubd management service: a Spring Boot WebFlux application that creates, lists, inspects and deletes
 * ublk devices over a JSON API ({@link DeviceController}), streams their statistics as server-sent events, serves a
 * live web page at {@code /}, and exposes the library's Micrometer meters at {@code /actuator/prometheus}.
 *
 * <p>Run as root on a kernel with {@code ublk_drv}: {@code java --enable-native-access=ALL-UNNAMED -jar ...}. With
 * {@code ubd.share-event-loops=true} the device queues run on the HTTP server's io_uring event loops
 * ({@link UbdConfiguration}). It listens on 127.0.0.1 and asks for credentials ({@link SecurityConfiguration}).
 *
 * <p>Two command-line modes write the credentials file and exit without starting the service:
 * {@code --ubd.security.credentials-file=FILE --ubd.tokens.add=NAME:ROLE} makes a bearer token and prints it once;
 * {@code --ubd.security.credentials-file=FILE --ubd.users.add=NAME:ROLE} adds a user of the login page, the password
 * read from the terminal (or the first line of standard input).
 */
// The service serves the devices its API creates, with a server of its own (DeviceManager): not the starter's devices.
@SpringBootApplication(exclude = UbdAutoConfiguration.class)
public class ManagementApplication {
    private static final Logger log = LoggerFactory.getLogger(ManagementApplication.class);

    /**
     * Starts the service, or runs a credentials mode.
     *
     * @param args Spring Boot's {@code --name=value} arguments
     */
    public static void main(String[] args) {
        String file = option(args, "ubd.security.credentials-file");
        String token = option(args, "ubd.tokens.add");
        String user = option(args, "ubd.users.add");
        if (token != null || user != null) {
            System.exit(credentialsMode(file, token, user));
        }
        SpringApplication.run(ManagementApplication.class, args);
    }

    /** The value of {@code --name=value} among the arguments, or null. */
    private static String option(String[] args, String name) {
        for (String a : args) {
            if (a.startsWith("--" + name + "=")) {
                return a.substring(name.length() + 3);
            }
        }
        return null;
    }

    /** Adds a token or a user; exit status 0, or 2 for a usage error. */
    static int credentialsMode(String file, String token, String user) {
        String what = token != null ? token : user;
        String flag = token != null ? "--ubd.tokens.add" : "--ubd.users.add";
        int colon = what.indexOf(':');
        if (file == null || colon < 1) {
            System.err.println("usage: " + flag + "=NAME:ROLE --ubd.security.credentials-file=FILE (ROLE: READER or "
                    + "OPERATOR)");
            return 2;
        }
        try {
            Path path = Path.of(file);
            String name = what.substring(0, colon);
            Role role = Role.parse(what.substring(colon + 1));
            if (token != null) {
                String secret = Credentials.addToken(path, name, role);
                System.err.println("token " + name + " (" + role + ") added to " + path + "; it is shown once, the "
                        + "file keeps only its hash. Send it as: Authorization: Bearer TOKEN");
                System.out.println(secret);
            } else {
                Credentials.addUser(path, name, role, password(name));
                System.err.println("user " + name + " (" + role + ") added to " + path);
            }
            return 0;
        } catch (IllegalArgumentException | IllegalStateException e) {
            System.err.println(e.getMessage());
            return 2;
        }
    }

    private static String password(String name) {
        Console console = System.console();
        if (console != null) {
            char[] p = console.readPassword("password of %s: ", name);
            return p == null ? "" : new String(p);
        }
        try {
            String line = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
            return line == null ? "" : line;
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the password from standard input: " + e.getMessage(), e);
        }
    }

    /**
     * The one policy every spec sent to the service is parsed and opened under (it counts the targets and memory
     * open under it).
     *
     * @param properties {@code ubd.targets.*}
     * @return the policy
     */
    @Bean
    public TargetPolicy targetPolicy(TargetPolicyProperties properties) {
        TargetPolicy p = properties.toPolicy();
        log.info(
                "target policy: file directories {}, block devices {}, create up to {} bytes, grow {}, NBD servers {}, "
                        + "NBD sockets {}, {} targets, {} memory bytes",
                p.directories(),
                p.blockDevices(),
                p.maxCreateBytes(),
                p.allowsGrow(),
                properties.nbdServers(),
                properties.nbdSockets(),
                p.maxTargets(),
                p.maxMemoryBytes());
        return p;
    }
}

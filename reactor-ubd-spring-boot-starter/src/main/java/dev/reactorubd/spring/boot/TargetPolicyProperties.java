package dev.reactorubd.spring.boot;

import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetSpec;
import java.nio.file.Path;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * {@code ubd.targets.*}: the {@link TargetPolicy} every spec sent to the service is parsed and opened under. Closed by
 * default: no file, no block device, no NBD server until configured, nothing created or grown, and the library's
 * modest limits ({@link TargetPolicy#defaults()}).
 *
 * @param fileDirectories directories whose files (below them, through no symbolic link) may be targets; give real
 *                        paths
 * @param blockDevices    block devices that may be targets (opened exclusively)
 * @param createMax       the largest file a request may create with {@code "create"} (e.g. {@code 10G}); 0 or
 *                        unset: none is created
 * @param allowGrow       whether a request may extend a shorter file with {@code "grow": true}
 * @param nbdServers      NBD servers as {@code host:port}, as specs write them
 * @param nbdSockets      NBD Unix sockets
 * @param rbdPools        Ceph pools and clients as {@code pool:client}, e.g. {@code rbd:ubd} (the client id without
 *                        {@code client.}); RBD specs may name no files of their own
 * @param rbdConf         the ceph.conf RBD specs are opened with (unset: librados' default search)
 * @param rbdKeyring      the keyring RBD specs are opened with (unset: the configuration's)
 * @param maxTargets      targets open at once (one per device)
 * @param maxMemory       bytes of memory targets open at once, e.g. {@code 1G}
 * @param maxParts        parts of one spec's compositions
 * @param maxDepth        nesting of compositions
 * @param maxSpecLength   characters of a spec
 */
@ConfigurationProperties("ubd.targets")
public record TargetPolicyProperties(
        @DefaultValue List<Path> fileDirectories,
        @DefaultValue List<Path> blockDevices,
        @DefaultValue("0") String createMax,
        @DefaultValue("false") boolean allowGrow,
        @DefaultValue List<String> nbdServers,
        @DefaultValue List<Path> nbdSockets,
        @DefaultValue List<String> rbdPools,
        Path rbdConf,
        Path rbdKeyring,
        @DefaultValue("16") int maxTargets,
        @DefaultValue("1G") String maxMemory,
        @DefaultValue("8") int maxParts,
        @DefaultValue("4") int maxDepth,
        @DefaultValue("4096") int maxSpecLength) {
    /**
     * {@return the policy these properties describe}
     *
     * @throws IllegalArgumentException naming the property that is wrong
     */
    public TargetPolicy toPolicy() {
        TargetPolicy.Builder b = TargetPolicy.builder();
        fileDirectories.forEach(b::allowDirectory);
        blockDevices.forEach(b::allowBlockDevice);
        long create = size("ubd.targets.create-max", createMax);
        if (create > 0) {
            b.allowCreate(create);
        }
        b.allowGrow(allowGrow);
        for (String server : nbdServers) {
            int colon = server.lastIndexOf(':');
            if (colon <= 0 || colon == server.length() - 1) {
                throw new IllegalArgumentException(
                        "ubd.targets.nbd-servers: '" + server + "' is not host:port, e.g. " + "nbd1.storage.lan:10809");
            }
            String host = server.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            b.allowNbd(host, Integer.parseInt(server.substring(colon + 1)));
        }
        nbdSockets.forEach(b::allowNbdSocket);
        for (String pool : rbdPools) {
            int colon = pool.indexOf(':');
            if (colon <= 0 || colon == pool.length() - 1) {
                throw new IllegalArgumentException("ubd.targets.rbd-pools: '" + pool
                        + "' is not pool:client, e.g. rbd:ubd (client.ubd on pool rbd)");
            }
            b.allowRbd(pool.substring(0, colon), pool.substring(colon + 1));
        }
        if (rbdConf != null || rbdKeyring != null) {
            b.rbdConfig(rbdConf, rbdKeyring);
        }
        return b.maxTargets(maxTargets)
                .maxMemoryBytes(size("ubd.targets.max-memory", maxMemory))
                .maxParts(maxParts)
                .maxDepth(maxDepth)
                .maxSpecLength(maxSpecLength)
                .build();
    }

    private static long size(String property, String text) {
        if (text == null || text.isBlank() || text.strip().equals("0")) {
            return 0;
        }
        try {
            return TargetSpec.parseSize(text.strip());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(property + ": " + e.getMessage(), e);
        }
    }
}

package dev.reactorubd.spring.boot;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.targets.spec.TargetPolicy;
import dev.reactorubd.targets.spec.TargetPolicyException;
import dev.reactorubd.targets.spec.TargetSpec;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * {@code ubd.targets.rbd-*} bound as Spring binds them, and the policy they make: which pool and client pairs a spec
 * may use, the files it is opened with, and that nothing RBD is allowed until configured. Only the checks that need no
 * cluster run here (they run when a spec is opened, before librbd is loaded); opening images against a real cluster is
 * {@code RbdBackendTest}'s and the device tests'.
 */
class TargetPolicyPropertiesTest {
    private static TargetPolicy policy(Map<String, String> properties) {
        return new Binder(new MapConfigurationPropertySource(properties))
                .bindOrCreate("ubd.targets", TargetPolicyProperties.class)
                .toPolicy();
    }

    private static TargetPolicyException.Rule refusal(TargetPolicy policy, String spec) {
        return assertThrows(
                        TargetPolicyException.class,
                        () -> TargetSpec.open(TargetSpec.parse(spec), policy, TargetSpec.OpenOptions.defaults()))
                .rule();
    }

    /** Passes the checks: the Mono is not subscribed, so nothing dials a monitor. */
    private static void allowed(TargetPolicy policy, String spec) {
        assertDoesNotThrow(() -> TargetSpec.open(TargetSpec.parse(spec), policy, TargetSpec.OpenOptions.defaults()));
    }

    @Test
    void noPoolIsAllowedUntilConfigured() {
        TargetPolicy p = policy(Map.of());
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "rbd:rbd/vol1"));
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "rbd:rbd/vol1?id=ubd"));
        assertNull(p.rbdConf());
        assertNull(p.rbdKeyring());
    }

    @Test
    void poolsArePairedWithTheirClientsAndSpecsNameNoFiles() {
        TargetPolicy p = policy(Map.of(
                "ubd.targets.rbd-pools", "rbd:ubd,archive:backup",
                "ubd.targets.rbd-conf", "/etc/ceph/ceph.conf",
                "ubd.targets.rbd-keyring", "/etc/ceph/ceph.client.ubd.keyring"));
        allowed(p, "rbd:rbd/vol1?id=ubd");
        allowed(p, "rbd:rbd/vol1@monday?id=ubd");
        allowed(p, "rbd:archive/old?id=backup");
        // Another client on an allowed pool, an allowed client on another pool, and admin (no id) are refused.
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "rbd:rbd/vol1?id=backup"));
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "rbd:archive/old?id=ubd"));
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "rbd:rbd/vol1"));
        assertEquals(TargetPolicyException.Rule.RBD_FILES, refusal(p, "rbd:rbd/vol1?id=ubd&conf=/tmp/evil.conf"));
        assertEquals(
                TargetPolicyException.Rule.RBD_FILES, refusal(p, "rbd:rbd/vol1?id=ubd&keyring=/root/admin.keyring"));
        // Inside a composition too.
        assertEquals(TargetPolicyException.Rule.RBD_POOL, refusal(p, "mirror(rbd:rbd/a?id=ubd,rbd:other/b?id=ubd)"));
        assertEquals(Path.of("/etc/ceph/ceph.conf"), p.rbdConf());
        assertEquals(Path.of("/etc/ceph/ceph.client.ubd.keyring"), p.rbdKeyring());
    }

    @Test
    void aPoolWithoutItsClientNamesTheProperty() {
        for (String bad : new String[] {"rbd", "rbd:", ":ubd"}) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> policy(Map.of("ubd.targets.rbd-pools", bad)), bad);
            assertTrue(e.getMessage().startsWith("ubd.targets.rbd-pools: '" + bad + "'"), e.getMessage());
            assertTrue(e.getMessage().contains("pool:client"), e.getMessage());
        }
    }
}

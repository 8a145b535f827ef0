package dev.reactorubd.targets.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.targets.rbd.RbdImageSpec;
import dev.reactorubd.targets.spec.TargetPolicyException.Rule;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * RBD specs: qemu's {@code rbd:POOL/IMAGE[@SNAP][?conf=&id=&keyring=]} syntax, inside compositions, and the policy's
 * pools and clients. Nothing here reaches a cluster: every refusal comes before librbd is loaded.
 */
class RbdSpecTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @Test
    void theSyntaxRoundTripsAndNamesWhatIsWrong() {
        RbdImageSpec s = RbdImageSpec.parse("rbd:pool1/vm-1@snap2?conf=/etc/ceph/c.conf&id=ubd&keyring=/k");
        assertEquals("pool1", s.pool());
        assertEquals("vm-1", s.image());
        assertEquals("snap2", s.snapshot());
        assertEquals(Path.of("/etc/ceph/c.conf"), s.conf());
        assertEquals("ubd", s.clientId());
        assertEquals(Path.of("/k"), s.keyring());
        assertTrue(s.readOnly());
        assertEquals(s, RbdImageSpec.parse(s.toString()));
        RbdImageSpec plain = RbdImageSpec.parse("rbd/disk");
        assertEquals("admin", plain.clientId());
        assertNull(plain.snapshot());
        assertEquals("rbd:rbd/disk", plain.toString());
        for (String[] bad : new String[][] {
            {"rbd:disk", "names no pool"},
            {"rbd:p/ns/disk", "namespace"},
            {"rbd:/disk", "pool name is empty"},
            {"rbd:p/", "image name is empty"},
            {"rbd:p/d@", "snapshot name is empty"},
            {"rbd:p/d?user=x", "unknown option 'user'"},
            {"rbd:p/d?conf=", "has no value"},
            {"rbd:p/d?id=a.b", "client id name 'a.b'"},
        }) {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> RbdImageSpec.parse(bad[0]), bad[0]);
            assertTrue(e.getMessage().contains(bad[1]), bad[0] + ": " + e.getMessage());
        }
    }

    @Test
    void anRbdLeafComposesLikeAnyOther() {
        TargetSpec t = TargetSpec.parse("mirror(rbd:rbd/a?id=ubd,memory:64M)");
        TargetSpec.Composite c = (TargetSpec.Composite) t;
        assertEquals(
                new TargetSpec.Rbd(RbdImageSpec.parse("rbd:rbd/a?id=ubd")),
                c.parts().get(0));
        assertEquals(t, TargetSpec.parse(t.text()));
        TargetSpec.InvalidTargetSpecException e = assertThrows(
                TargetSpec.InvalidTargetSpecException.class, () -> TargetSpec.parse("stripe(rbd:nopool,memory:1M)"));
        assertTrue(e.getMessage().contains("names no pool"), e.getMessage());
    }

    @Test
    void aPolicyAllowsOnlyItsPoolsAndClientsAndNoFilesOfTheSpec() {
        TargetPolicy policy = TargetPolicy.builder()
                .allowRbd("rbd", "ubd")
                .rbdConfig(Path.of("/etc/ceph/ceph.conf"), null)
                .build();
        TargetPolicyException e = assertThrows(
                TargetPolicyException.class,
                () -> TargetSpec.open("rbd:rbd/a", policy, TargetSpec.OpenOptions.defaults())
                        .block(WAIT));
        assertEquals(Rule.RBD_POOL, e.rule(), e.getMessage());
        assertTrue(e.getMessage().contains("client.admin"), e.getMessage());
        e = assertThrows(
                TargetPolicyException.class,
                () -> TargetSpec.open("rbd:other/a?id=ubd", policy, TargetSpec.OpenOptions.defaults())
                        .block(WAIT));
        assertEquals(Rule.RBD_POOL, e.rule(), e.getMessage());
        e = assertThrows(
                TargetPolicyException.class,
                () -> TargetSpec.open("rbd:rbd/a?id=ubd&keyring=/root/k", policy, TargetSpec.OpenOptions.defaults())
                        .block(WAIT));
        assertEquals(Rule.RBD_FILES, e.rule(), e.getMessage());
        e = assertThrows(
                TargetPolicyException.class,
                () -> TargetSpec.open("rbd:rbd/a?id=ubd", TargetPolicy.defaults(), TargetSpec.OpenOptions.defaults())
                        .block(WAIT));
        assertEquals(Rule.RBD_POOL, e.rule(), "the default policy allows no pool");
    }
}

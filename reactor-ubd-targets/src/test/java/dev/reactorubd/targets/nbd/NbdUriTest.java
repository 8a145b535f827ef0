package dev.reactorubd.targets.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The NBD URI convention: what parses, to what, and what is refused with a message that shows a right URI. */
class NbdUriTest {
    @Test
    void tcpWithPortAndExport() {
        NbdUri u = NbdUri.parse("nbd://127.0.0.1:10900/disk");
        assertEquals("127.0.0.1", u.host());
        assertEquals(10900, u.port());
        assertEquals("disk", u.exportName());
        assertFalse(u.isUnix());
        assertNull(u.socketPath());
        assertEquals("nbd://127.0.0.1:10900/disk", u.toString());
    }

    @Test
    void defaultPortAndDefaultExport() {
        assertEquals(NbdUri.tcp("example.com", 10809, ""), NbdUri.parse("nbd://example.com"));
        assertEquals(NbdUri.tcp("example.com", 10809, ""), NbdUri.parse("nbd://example.com/"));
        assertEquals(NbdUri.tcp("example.com", 10809, "x"), NbdUri.parse("NBD://example.com/x"));
    }

    @Test
    void ipv6AndPercentEncodedNames() {
        NbdUri u = NbdUri.parse("nbd://[::1]:2000/my%20disk");
        assertEquals("::1", u.host());
        assertEquals(2000, u.port());
        assertEquals("my disk", u.exportName());
        assertEquals("nbd://[::1]:2000/my%20disk", u.toString());
        assertEquals(u, NbdUri.parse(u.toString()));
        assertEquals("a/b", NbdUri.parse("nbd://h/a/b").exportName(), "slashes after the first belong to the name");
    }

    @Test
    void unixSocket() {
        NbdUri u = NbdUri.parse("nbd+unix:///disk?socket=/run/nbd.sock");
        assertTrue(u.isUnix());
        assertEquals("/run/nbd.sock", u.socketPath());
        assertEquals("disk", u.exportName());
        assertNull(u.host());
        assertEquals(u, NbdUri.parse(u.toString()));
        assertEquals("", NbdUri.parse("nbd+unix://?socket=/tmp/s").exportName());
        assertEquals("/tmp/a b", NbdUri.parse("nbd+unix:///x?socket=/tmp/a%20b").socketPath());
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "127.0.0.1:10809/disk", // no scheme
                "http://host/disk", // another scheme
                "nbd:host/disk", // no //
                "nbd:///disk", // no host
                "nbd://host:0/disk", // port 0
                "nbd://host:70000/disk", // port out of range
                "nbd://host:abc/disk", // port not a number
                "nbd://host/disk?socket=/tmp/s", // a query on TCP
                "nbd://user@host/disk", // user info
                "nbd+unix:///disk", // no socket
                "nbd+unix:///disk?socket=", // empty socket
                "nbd+unix://host/disk?socket=/tmp/s", // a host on a Unix socket
                "nbd+unix:///disk?sock=/tmp/s", // unknown parameter
                "nbds://host/disk?tls-verify-peer=0", // TLS without verifying the server
                "nbds://host/disk?tls-type=psk", // TLS with pre-shared keys
                "nbd://host/disk?tls-certificates=/etc", // TLS parameters without TLS
                "nbds://host/disk?socket=/tmp/s", // a socket on TCP TLS
                "nbds+unix:///disk", // no socket
                "nbds://host/disk?tls-hostname=", // an empty name
                "nbd://ho st/disk", // not a URI
            })
    void badUrisSayWhatARightOneLooksLike(String bad) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NbdUri.parse(bad));
        assertTrue(
                e.getMessage().contains("nbd://HOST[:PORT]/EXPORT")
                        && e.getMessage().contains("nbd+unix:///"),
                e.getMessage());
    }

    @Test
    void tlsUrisAskForTlsWithTheirParameters() {
        NbdUri u = NbdUri.parse("nbds://example.com:10810/disk?tls-certificates=/etc/ubd/tls&tls-hostname=nbd.example"
                + "&tls-type=x509&tls-verify-peer=1");
        assertTrue(u.tls());
        assertEquals("example.com", u.host());
        assertEquals(10810, u.port());
        assertEquals("disk", u.exportName());
        assertEquals("/etc/ubd/tls", u.tlsCertificates());
        assertEquals("nbd.example", u.tlsHostname());
        assertEquals(u, NbdUri.parse(u.toString()));
        NbdUri plain = NbdUri.parse("nbds://example.com/disk");
        assertTrue(plain.tls());
        assertNull(plain.tlsCertificates());
        assertEquals("nbds://example.com:10809/disk", plain.toString());
        NbdUri unix = NbdUri.parse("nbds+unix:///disk?socket=/run/nbd.sock&tls-certificates=/etc/tls");
        assertTrue(unix.tls() && unix.isUnix());
        assertEquals("/run/nbd.sock", unix.socketPath());
        assertNull(unix.tlsHostname());
        assertEquals(unix, NbdUri.parse(unix.toString()));
        assertFalse(NbdUri.parse("nbd://example.com/disk").tls());
        NbdUri odd = NbdUri.unix("/run/a b+c&d.sock", "x").withTls("/etc/tls 1+2&3", null);
        assertEquals(odd, NbdUri.parse(odd.toString()), odd.toString());
    }

    @Test
    void recordChecksItsParts() {
        assertThrows(IllegalArgumentException.class, () -> new NbdUri("h", 1, "/s", "x"));
        assertThrows(IllegalArgumentException.class, () -> new NbdUri(null, 0, null, "x"));
        assertThrows(IllegalArgumentException.class, () -> NbdUri.tcp("", 1, "x"));
    }
}

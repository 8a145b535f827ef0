/**
 * The Ceph RBD target: images of a Ceph cluster served through librbd ({@link dev.reactorubd.targets.rbd.RbdBackend}),
 * named by {@link dev.reactorubd.targets.rbd.RbdImageSpec} ({@code rbd:POOL/IMAGE[@SNAP]?conf=&id=&keyring=}).
 *
 * <p>librados.so.2 and librbd.so.1 (Debian's librbd1) are loaded on the first open, through {@code java.lang.foreign}:
 * grant this module native access ({@code --enable-native-access=dev.reactorubd.targets} on the module path, {@code
 * ALL-UNNAMED} on the class path).
 */
package dev.reactorubd.targets.rbd;

/**
 * The kernel ABI of the ublk driver: commands, feature bits, IO operations and flags, device states, and the
 * structs exchanged with the driver as {@link java.lang.foreign.MemoryLayout}s with named accessors.
 *
 * <p>Everything here mirrors {@code include/uapi/linux/ublk_cmd.h}. Values that appeared after Linux 6.12 say
 * the version that added them; never assume a newer one is present: probe with
 * {@code UbdControl#features()}. This package does no IO.
 */
package dev.reactorubd.sys;

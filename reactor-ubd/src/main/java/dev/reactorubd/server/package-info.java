/**
 * The device API: {@link dev.reactorubd.server.UbdServer} adds a device, wires its queues to a {@link
 * dev.reactorubd.server.BlockBackend} (or hands them to the caller) and starts it; {@link
 * dev.reactorubd.server.UbdDevice} is the handle that stops, drains and deletes it.
 */
package dev.reactorubd.server;

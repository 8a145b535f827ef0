package dev.reactorubd.management;

/**
 * The body of {@code POST /api/devices}.
 *
 * @param target a target spec: {@code null:SIZE}, {@code memory:SIZE}, {@code file:PATH[?direct][?ro]},
 *               {@code nbd://host[:port]/export}, {@code nbd+unix:///export?socket=PATH}, or
 *               {@code mirror(...)}, {@code stripe[:CHUNK](...)}, {@code concat(...)} of specs (required)
 * @param size   the device size, e.g. {@code 64M} (optional: else the target's; a missing file is created with it)
 * @param queues hardware queues (optional, default 1)
 * @param depth  tags per queue (optional, default 128)
 * @param id     the device id to ask for (optional, default: the kernel picks)
 */
public record CreateDeviceRequest(String target, String size, Integer queues, Integer depth, Integer id) {
}

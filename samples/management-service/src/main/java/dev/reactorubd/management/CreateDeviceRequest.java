package dev.reactorubd.management;

/**
 * The body of {@code POST /api/devices}.
 *
 * @param target a target spec: {@code null:SIZE}, {@code memory:SIZE}, {@code file:PATH[?direct][?ro]},
 *               {@code nbd://host[:port]/export}, {@code nbd+unix:///export?socket=PATH}, or
 *               {@code mirror(...)}, {@code stripe[:CHUNK](...)}, {@code concat(...)} of specs (required)
 * @param size   the device size, e.g. {@code 64M} (optional: else the target's); never creates or grows a file
 * @param queues hardware queues (optional, default 1)
 * @param depth  tags per queue (optional, default 128)
 * @param id     the device id to ask for (optional, default: the kernel picks)
 * @param create create the spec's missing files with this size, e.g. {@code 64M} (optional; only where
 *               {@code ubd.targets.create-max} allows it)
 * @param grow   extend the spec's shorter files to {@code size} (optional; only with {@code ubd.targets.allow-grow})
 */
public record CreateDeviceRequest(
        String target, String size, Integer queues, Integer depth, Integer id, String create, Boolean grow) {}

package dev.reactorubd.samples;

import dev.reactorubd.ctrl.DeviceInfo;
import dev.reactorubd.ctrl.DeviceParams;
import dev.reactorubd.ctrl.UblkFeature;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What {@code ubd list} prints, from values (no kernel): a table for people and JSON for scripts.
 *
 * <p>The JSON is one object, {@code {"devices": [...]}}, whose device objects have these fields, always present and
 * never renamed (new fields may be added): {@code id}, {@code state} ({@code DEAD}, {@code LIVE}, {@code QUIESCED},
 * {@code FAIL_IO}, {@code UNKNOWN}), {@code queues}, {@code depth}, {@code server_pid}, {@code block_device},
 * {@code char_device}; with {@code -v} also {@code size_bytes}, {@code logical_block_size},
 * {@code physical_block_size}, {@code max_io_bytes}, {@code read_only} ({@code null} each when the kernel would not
 * give the parameters), {@code flags} (feature names, such as {@code USER_COPY}), {@code owner_uid} and
 * {@code owner_gid}.
 */
final class DeviceListing {
    /** One device: what GET_DEV_INFO said, and what GET_PARAMS said ({@code null} when it failed or was not asked). */
    record Row(DeviceInfo info, DeviceParams params) {}

    private DeviceListing() {}

    /** A table with a header line, one line per device; "no ublk devices" when there is none. */
    static String table(List<Row> rows, boolean verbose) {
        if (rows.isEmpty()) {
            return "no ublk devices\n";
        }
        List<String[]> lines = new ArrayList<>();
        lines.add(
                verbose
                        ? new String[] {"ID", "STATE", "QUEUES", "DEPTH", "SIZE", "PID", "DEVICE", "FLAGS"}
                        : new String[] {"ID", "STATE", "QUEUES", "DEPTH", "PID", "DEVICE"});
        for (Row r : rows) {
            DeviceInfo d = r.info();
            String pid = d.serverPid() > 0 ? Integer.toString(d.serverPid()) : "-";
            lines.add(
                    verbose
                            ? new String[] {
                                Integer.toString(d.id()),
                                d.state().name(),
                                Integer.toString(d.queues()),
                                Integer.toString(d.depth()),
                                r.params() == null ? "?" : humanSize(r.params().capacityBytes()),
                                pid,
                                d.blockDevicePath(),
                                flags(r)
                            }
                            : new String[] {
                                Integer.toString(d.id()),
                                d.state().name(),
                                Integer.toString(d.queues()),
                                Integer.toString(d.depth()),
                                pid,
                                d.blockDevicePath()
                            });
        }
        int[] width = new int[lines.getFirst().length];
        for (String[] l : lines) {
            for (int i = 0; i < l.length; i++) {
                width[i] = Math.max(width[i], l[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (String[] l : lines) {
            for (int i = 0; i < l.length; i++) {
                sb.append(l[i]);
                if (i < l.length - 1) {
                    sb.append(" ".repeat(width[i] - l[i].length() + 2));
                }
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** The feature names, comma-separated, and {@code read_only} when the device is. */
    private static String flags(Row r) {
        List<String> names = new ArrayList<>();
        for (UblkFeature f : r.info().features()) {
            names.add(f.name().toLowerCase(Locale.ROOT));
        }
        if (r.params() != null && r.params().readOnly()) {
            names.add("read_only");
        }
        return names.isEmpty() ? "-" : String.join(",", names);
    }

    /** The JSON document described in the class comment, ending with a newline. */
    static String json(List<Row> rows, boolean verbose) {
        StringBuilder sb = new StringBuilder("{\"devices\": [");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            DeviceInfo d = r.info();
            DeviceParams p = r.params();
            sb.append(i == 0 ? "\n  {" : ",\n  {");
            sb.append("\"id\": ").append(d.id());
            sb.append(", \"state\": ").append(string(d.state().name()));
            sb.append(", \"queues\": ").append(d.queues());
            sb.append(", \"depth\": ").append(d.depth());
            sb.append(", \"server_pid\": ").append(d.serverPid());
            sb.append(", \"block_device\": ").append(string(d.blockDevicePath()));
            sb.append(", \"char_device\": ").append(string(d.charDevicePath()));
            if (verbose) {
                sb.append(", \"size_bytes\": ").append(p == null ? "null" : Long.toString(p.capacityBytes()));
                sb.append(", \"logical_block_size\": ")
                        .append(p == null ? "null" : Integer.toString(p.logicalBlockSize()));
                sb.append(", \"physical_block_size\": ")
                        .append(p == null ? "null" : Integer.toString(p.physicalBlockSize()));
                sb.append(", \"max_io_bytes\": ").append(p == null ? "null" : Long.toString(p.maxIoBytes()));
                sb.append(", \"read_only\": ").append(p == null ? "null" : Boolean.toString(p.readOnly()));
                sb.append(", \"flags\": [");
                int n = 0;
                for (UblkFeature f : d.features()) {
                    sb.append(n++ == 0 ? "" : ", ").append(string(f.name()));
                }
                sb.append("]");
                sb.append(", \"owner_uid\": ").append(d.ownerUid());
                sb.append(", \"owner_gid\": ").append(d.ownerGid());
            }
            sb.append('}');
        }
        sb.append(rows.isEmpty() ? "]}\n" : "\n]}\n");
        return sb.toString();
    }

    /** A JSON string literal. */
    static String string(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    /** 64M, 10G, 1.5G, 4096: the largest binary unit that gives at most one decimal. */
    static String humanSize(long bytes) {
        String[] units = {"K", "M", "G", "T", "P"};
        if (bytes < 1024) {
            return Long.toString(bytes);
        }
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return (v == Math.rint(v) ? Long.toString((long) v) : String.format(Locale.ROOT, "%.1f", v)) + units[u];
    }
}

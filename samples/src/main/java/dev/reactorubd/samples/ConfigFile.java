package dev.reactorubd.samples;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The file of {@code ubd serve --config FILE}: one device a line, written in the options of {@code ubd serve} that
 * describe a device ({@code --id N}, the target and its options, geometry, recovery mode, {@code --handover}).
 *
 * <pre>
 * # /etc/reactor-ubd/devices.conf
 * --id 3 --target file --file /var/lib/ubd/disk3.img --recovery REISSUE --queues 2
 * --id 4 --target mirror --replica file:/var/lib/ubd/a.img \
 *        --replica nbd://10.0.0.5/vol4 --recovery REISSUE
 * </pre>
 *
 * <p>Words are split on blanks; single quotes keep everything up to the next one, double quotes everything but
 * {@code \"} and {@code \\}, a backslash keeps the next character, and a backslash at the end of a line joins the next
 * one. A word starting with {@code #} starts a comment. Every line needs its own {@code --id}: it is how a reload
 * tells a device that stays from one that is added or removed. Server-wide options ({@code --copy}, {@code --json},
 * ...) belong on the command line, not here.
 *
 * <p>The file is read as root runs it: it must be a regular file, owned by root or by the user running ubd, and
 * writable by nobody else, since whoever can change it chooses what the server opens. Every problem is a {@link
 * Invalid} naming the file and the line.
 */
final class ConfigFile {
    private ConfigFile() {}

    /** One device of the file: where it is, its words, and the options they parse to. */
    record DeviceLine(int line, int id, List<String> words, TargetOptions target, DeviceOptions device) {}

    /** The file cannot be used as it is: the message names the file, the line and what to change. */
    static final class Invalid extends UbdCommand.UsageError {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    /** The options of one line: those of a device, none of the server's. */
    @Command(name = "line")
    static final class Line {
        @CommandLine.Mixin
        TargetOptions target = new TargetOptions();

        @CommandLine.Mixin
        DeviceOptions device = new DeviceOptions();
    }

    /** Reads and checks {@code file}: its devices in file order. */
    static List<DeviceLine> read(Path file) {
        checkOwnership(file);
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Invalid(file + ": cannot be read (" + e.getMessage() + ")");
        }
        return parse(file.toString(), text);
    }

    /** Parses {@code text}, named {@code name} in messages. */
    static List<DeviceLine> parse(String name, String text) {
        List<DeviceLine> devices = new ArrayList<>();
        Map<Integer, Integer> lineOfId = new HashMap<>();
        for (Words w : split(name, text)) {
            Line parsed = new Line();
            try {
                new CommandLine(parsed).parseArgs(w.words.toArray(String[]::new));
            } catch (CommandLine.ParameterException e) {
                throw new Invalid(name + ": line " + w.line + ": " + e.getMessage()
                        + " (a line holds the options of one device: --id, the target and its options, --queues, "
                        + "--depth, --block-size, --recovery, --handover; server-wide options go on the command line)");
            }
            if (parsed.target.target == null) {
                throw new Invalid(name + ": line " + w.line + ": no --target: give the device's target, e.g. "
                        + "--target file --file PATH");
            }
            int id = parsed.device.id;
            if (id < 0) {
                throw new Invalid(name + ": line " + w.line + ": no --id: every device of the file needs its own id "
                        + "(how a reload knows it), e.g. --id 3");
            }
            Integer first = lineOfId.putIfAbsent(id, w.line);
            if (first != null) {
                throw new Invalid(name + ": line " + w.line + ": device " + id + " is already on line " + first
                        + ": give each device its own --id");
            }
            devices.add(new DeviceLine(w.line, id, List.copyOf(w.words), parsed.target, parsed.device));
        }
        return devices;
    }

    private record Words(int line, List<String> words) {}

    /** The file's logical lines, as words, with the line each starts on; blank and comment lines are left out. */
    private static List<Words> split(String name, String text) {
        List<Words> lines = new ArrayList<>();
        List<String> words = new ArrayList<>();
        StringBuilder word = null;
        int line = 1;
        int start = 1;
        char quote = 0;
        int quoteLine = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean fresh = words.isEmpty() && word == null;
            int at = line;
            if (quote == '\'') {
                if (c == '\'') {
                    quote = 0;
                } else {
                    line += c == '\n' ? 1 : 0;
                    word.append(c);
                }
            } else if (quote == '"') {
                if (c == '"') {
                    quote = 0;
                } else if (c == '\\'
                        && i + 1 < text.length()
                        && (text.charAt(i + 1) == '"' || text.charAt(i + 1) == '\\')) {
                    word.append(text.charAt(++i));
                } else {
                    line += c == '\n' ? 1 : 0;
                    word.append(c);
                }
            } else if (c == '\\') {
                if (i + 1 < text.length() && text.charAt(i + 1) == '\n') {
                    i++;
                    line++; // a continued line: the words go on
                } else if (i + 1 < text.length()) {
                    word = word == null ? new StringBuilder() : word;
                    word.append(text.charAt(++i));
                }
            } else if (c == '\'' || c == '"') {
                word = word == null ? new StringBuilder() : word;
                quote = c;
                quoteLine = line;
            } else if (c == '#' && word == null) {
                while (i + 1 < text.length() && text.charAt(i + 1) != '\n') {
                    i++;
                }
            } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                if (word != null) {
                    words.add(word.toString());
                    word = null;
                }
                if (c == '\n') {
                    if (!words.isEmpty()) {
                        lines.add(new Words(start, words));
                        words = new ArrayList<>();
                    }
                    line++;
                }
            } else {
                word = word == null ? new StringBuilder() : word;
                word.append(c);
            }
            if (fresh && word != null) {
                start = at; // the first word of a logical line: where it is reported
            }
        }
        if (quote != 0) {
            throw new Invalid(name + ": line " + quoteLine + ": the quote " + quote + " is not closed");
        }
        if (word != null) {
            words.add(word.toString());
        }
        if (!words.isEmpty()) {
            lines.add(new Words(start, words));
        }
        return lines;
    }

    /** Refuses a file that someone other than root or the user running ubd could have written. */
    static void checkOwnership(Path file) {
        PosixFileAttributes a;
        try {
            a = Files.readAttributes(file, PosixFileAttributes.class);
        } catch (IOException e) {
            throw new Invalid(file + ": cannot be read (" + e.getMessage() + ")");
        }
        if (!a.isRegularFile()) {
            throw new Invalid(file + ": not a regular file");
        }
        String owner = a.owner().getName();
        if (!owner.equals("root") && !owner.equals(System.getProperty("user.name"))) {
            throw new Invalid(file + ": owned by " + owner + ", neither root nor " + System.getProperty("user.name")
                    + " (who runs ubd): whoever can change it chooses what this server opens; chown it");
        }
        Set<PosixFilePermission> p = a.permissions();
        if (p.contains(PosixFilePermission.GROUP_WRITE) || p.contains(PosixFilePermission.OTHERS_WRITE)) {
            throw new Invalid(file + ": writable by its group or by others: whoever can change it chooses what this "
                    + "server opens; chmod go-w " + file);
        }
    }
}

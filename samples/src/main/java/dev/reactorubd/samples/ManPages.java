package dev.reactorubd.samples;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * Writes the {@code ubd} man pages, {@code ubd.1} and {@code ubd-VERB.1} for each verb, in troff's man macros, from
 * the command's own definitions (its picocli model: names, options, parameters, descriptions, examples, the exit
 * status table, the examples), so that a page never says something the command does not do. Run by scripts/package-deb:
 * {@code java -cp ubd.jar dev.reactorubd.samples.ManPages DIR}.
 */
public final class ManPages {
    private ManPages() {}

    /**
     * Writes the pages into the directory {@code args[0]} (created if missing).
     *
     * @param args the output directory
     * @throws IOException when a page cannot be written
     */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: ManPages DIR");
            System.exit(2);
        }
        List<Path> written = write(Path.of(args[0]));
        System.out.println(written.size() + " man pages in " + args[0]);
    }

    /**
     * Writes every page into {@code dir}.
     *
     * @param dir where the pages go
     * @return the files written, {@code ubd.1} first
     * @throws IOException when a page cannot be written
     */
    static List<Path> write(Path dir) throws IOException {
        Files.createDirectories(dir);
        CommandLine root = UbdCommand.commandLine();
        List<Path> out = new ArrayList<>();
        out.add(write(dir, root.getCommandSpec(), "ubd"));
        for (CommandLine sub : root.getSubcommands().values()) {
            out.add(write(dir, sub.getCommandSpec(), "ubd-" + sub.getCommandName()));
        }
        return out;
    }

    private static Path write(Path dir, CommandSpec spec, String name) throws IOException {
        Path p = dir.resolve(name + ".1");
        Files.writeString(p, page(spec, name));
        return p;
    }

    /** One page in troff's man macros. */
    static String page(CommandSpec spec, String name) {
        StringBuilder t = new StringBuilder();
        String version = String.join(" ", spec.root().version());
        t.append(".TH ")
                .append(name.toUpperCase(Locale.ROOT))
                .append(" 1 \"\" \"")
                .append(escape(version))
                .append("\" \"reactor-ubd\"\n");
        t.append(".SH NAME\n")
                .append(escape(name))
                .append(" \\- ")
                .append(escape(
                        firstSentence(String.join(" ", spec.usageMessage().description()))))
                .append('\n');
        t.append(".SH SYNOPSIS\n.B ").append(escape(spec.qualifiedName())).append('\n');
        for (OptionSpec o : spec.options()) {
            if (!o.hidden()) {
                t.append("[").append(escape(synopsis(o))).append("]\n");
            }
        }
        for (PositionalParamSpec p : spec.positionalParameters()) {
            if (!p.hidden()) {
                t.append(escape(p.paramLabel())).append(p.arity().max() > 1 ? "...\n" : "\n");
            }
        }
        if (!spec.subcommands().isEmpty()) {
            t.append("VERB ...\n");
        }
        t.append(".SH DESCRIPTION\n")
                .append(escape(String.join(" ", spec.usageMessage().description())))
                .append('\n');
        if (!spec.subcommands().isEmpty()) {
            t.append(".SH VERBS\n");
            spec.subcommands()
                    .forEach((verb, sub) -> t.append(".TP\n.BR ubd\\-")
                            .append(escape(verb))
                            .append(" (1)\n")
                            .append(escape(firstSentence(String.join(
                                    " ", sub.getCommandSpec().usageMessage().description()))))
                            .append('\n'));
        }
        if (!spec.options().isEmpty()) {
            t.append(".SH OPTIONS\n");
            for (OptionSpec o : spec.options()) {
                if (o.hidden()) {
                    continue;
                }
                t.append(".TP\n.B ").append(escape(synopsis(o))).append('\n');
                t.append(escape(description(o))).append('\n');
            }
        }
        if (!spec.positionalParameters().isEmpty()) {
            t.append(".SH ARGUMENTS\n");
            for (PositionalParamSpec p : spec.positionalParameters()) {
                t.append(".TP\n.I ").append(escape(p.paramLabel())).append('\n');
                t.append(escape(description(p))).append('\n');
            }
        }
        // The footer: the verb's examples.
        String[] footer = spec.usageMessage().footer();
        if (footer.length > 0) {
            t.append(".SH NOTES\n.nf\n");
            for (String line : footer) {
                t.append(escape(line)).append('\n');
            }
            t.append(".fi\n");
        }
        if (!spec.usageMessage().exitCodeList().isEmpty()) {
            t.append(".SH EXIT STATUS\n");
            spec.usageMessage()
                    .exitCodeList()
                    .forEach((code, meaning) -> t.append(".TP\n.B ")
                            .append(escape(code.strip()))
                            .append('\n')
                            .append(escape(meaning.strip()))
                            .append('\n'));
        }
        if (!name.equals("ubd")) {
            t.append(".SH SEE ALSO\n.BR ubd (1)\n");
        }
        return t.toString();
    }

    private static String synopsis(OptionSpec o) {
        String names = String.join(", ", o.names());
        if (o.negatable()) {
            names = names.replaceFirst("^--", "--[no-]");
        }
        return o.arity().max() == 0 ? names : names + " " + o.paramLabel();
    }

    private static String description(ArgSpec a) {
        String d = String.join(" ", a.description());
        String def = a.defaultValueString();
        return d.replace("${DEFAULT-VALUE}", def == null ? "" : def);
    }

    private static String firstSentence(String s) {
        int dot = s.indexOf(". ");
        return dot < 0 ? (s.endsWith(".") ? s.substring(0, s.length() - 1) : s) : s.substring(0, dot);
    }

    /** Text as troff prints it: backslashes doubled, a leading dot or quote kept from becoming a request. */
    static String escape(String s) {
        String e = s.replace("\\", "\\e").replace("-", "\\-");
        return e.startsWith(".") || e.startsWith("'") ? "\\&" + e : e;
    }
}

/**
 * The {@code ubd} command line and the samples: the library used as an embedder uses it, through the exported
 * packages of the core and the targets only.
 */
module dev.reactorubd.samples {
    requires dev.reactorubd.targets;
    requires info.picocli;
    // sun.misc.Signal: serve and recover hand the device over on SIGTERM and SIGINT.
    requires jdk.unsupported;

    // picocli reads the commands' annotated fields and methods reflectively.
    opens dev.reactorubd.samples to
            info.picocli;
}

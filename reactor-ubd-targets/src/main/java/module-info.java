/**
 * reactor-ubd's ready-made backends: null, memory, file, NBD, Ceph RBD, the composition filters (mirror, stripe, concat and the
 * decorators) and the one-string target specs that assemble them. Each target package is exported; they reach the
 * core through its exported packages, and the file and NBD backends through its io_uring layer, which the core
 * exports to this module alone.
 */
module dev.reactorubd.targets {
    requires transitive dev.reactorubd;
    requires io.netty.handler;
    requires io.netty.transport.unix.common;
    requires org.slf4j;

    exports dev.reactorubd.targets;
    exports dev.reactorubd.targets.compose;
    exports dev.reactorubd.targets.file;
    exports dev.reactorubd.targets.nbd;
    exports dev.reactorubd.targets.rbd;
    exports dev.reactorubd.targets.spec;
}

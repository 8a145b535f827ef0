package dev.reactorubd.targets.spec;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdException;
import dev.reactorubd.targets.file.FileBackend;
import dev.reactorubd.targets.spec.TargetPolicyException.Rule;
import dev.reactorubd.uring.Libc;
import java.io.File;
import java.nio.file.Path;

/**
 * Opens a {@code file:} target under a {@link TargetPolicy} (not API): the path checked by name, then resolved from
 * the allowed directory's descriptor one component at a time with {@code O_NOFOLLOW}, the file named by an {@code
 * O_PATH} descriptor checked with {@code fstat}, created only when asked and allowed, and opened for IO through that
 * descriptor ({@link FileBackend#open(Path, int, FileBackend.Options, boolean, boolean)}). Blocking: called on
 * {@code Schedulers.boundedElastic()}, never on an event loop.
 */
final class PolicyFiles {
    private static final int ENOTDIR = 20;
    private static final int ELOOP = 40;
    private static final int CREATE_MODE = 0600;

    private PolicyFiles() {}

    /**
     * Checks a file target's name against the policy, touching nothing on disk.
     *
     * @throws TargetPolicyException FILE_DIRECTORY when the path is outside every allowed directory
     */
    static void checkName(TargetSpec.File f, TargetPolicy policy) {
        if (policy.allowsAnyFile()) {
            return;
        }
        Path p = f.path();
        if (p.isAbsolute()
                && !TargetPolicy.hasDotDot(p)
                && policy.blockDevices().contains(p.normalize())) {
            return;
        }
        allowedDirectory(p, policy);
    }

    private static Path allowedDirectory(Path p, TargetPolicy policy) {
        if (p.isAbsolute() && !TargetPolicy.hasDotDot(p)) {
            Path n = p.normalize();
            for (Path dir : policy.directories()) {
                if (n.startsWith(dir) && !n.equals(dir)) {
                    return dir;
                }
            }
        }
        throw new TargetPolicyException(
                Rule.FILE_DIRECTORY,
                "file:" + p + " is not below a directory this policy "
                        + "allows: name a file by its absolute path (no ..) inside "
                        + (policy.directories().isEmpty()
                                ? "an allowed directory (this policy allows none: configure one)"
                                : "one of " + policy.directories()));
    }

    /**
     * Opens a file target; blocking.
     *
     * @throws TargetPolicyException the rule refusing it; nothing was created or changed
     * @throws UbdException when the file cannot be used for another reason (permissions, empty)
     */
    static FileBackend open(TargetSpec.File f, TargetPolicy policy, TargetSpec.OpenOptions o) {
        Path p = f.path();
        FileBackend.Options fo =
                FileBackend.Options.defaults().direct(f.direct()).readOnly(f.readOnly());
        if (policy.allowsAnyFile()) {
            int fd = Libc.openat(Libc.AT_FDCWD, p.toString(), Libc.O_PATH | Libc.O_CLOEXEC, 0);
            if (fd == -Errno.ENOENT) {
                fd = create(Libc.AT_FDCWD, p.toString(), p, f, policy, o);
            } else if (fd < 0) {
                throw new UbdException("cannot open " + p + ": " + Errno.describe(-fd), -fd);
            }
            return adopt(p, fd, fo, f, policy, o, policy.allowsAnyBlockDevice());
        }
        Path n = p.normalize();
        if (p.isAbsolute()
                && !TargetPolicy.hasDotDot(p)
                && policy.blockDevices().contains(n)) {
            int fd = Libc.openat(Libc.AT_FDCWD, n.toString(), Libc.O_PATH | Libc.O_CLOEXEC, 0);
            if (fd < 0) {
                throw new UbdException("cannot open block device " + n + ": " + Errno.describe(-fd), -fd);
            }
            return adopt(p, fd, fo, f, policy, o, true);
        }
        Path dir = allowedDirectory(p, policy);
        int cur = Libc.openat(Libc.AT_FDCWD, dir.toString(), Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (cur < 0) {
            throw new TargetPolicyException(
                    Rule.FILE_DIRECTORY,
                    "the allowed directory " + dir + " cannot be opened (" + Errno.describe(-cur)
                            + "): create it, or fix the policy");
        }
        try {
            Path rel = dir.relativize(n);
            int names = rel.getNameCount();
            for (int i = 0; i < names - 1; i++) {
                String name = rel.getName(i).toString();
                int next = Libc.openat(cur, name, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
                if (next == -ENOTDIR || next == -ELOOP) {
                    throw new TargetPolicyException(
                            Rule.FILE_SYMLINK,
                            dir.resolve(rel.subpath(0, i + 1))
                                    + " is a symbolic link or not a directory: name the file by its real path below "
                                    + dir);
                }
                if (next < 0) {
                    throw new UbdException(
                            "cannot open the directory " + dir.resolve(rel.subpath(0, i + 1)) + ": "
                                    + Errno.describe(-next) + (next == -Errno.ENOENT ? "; create it first" : ""),
                            -next);
                }
                Libc.close(cur);
                cur = next;
            }
            String last = rel.getName(names - 1).toString();
            int fd = Libc.openat(cur, last, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
            if (fd == -Errno.ENOENT) {
                fd = create(cur, last, p, f, policy, o);
            } else if (fd < 0) {
                throw new UbdException("cannot open " + p + ": " + Errno.describe(-fd), -fd);
            }
            return adopt(p, fd, fo, f, policy, o, false);
        } finally {
            Libc.close(cur);
        }
    }

    /** Creates a missing file where the request asks and the policy allows: a descriptor of the new, sized file. */
    private static int create(
            int dirFd, String name, Path p, TargetSpec.File f, TargetPolicy policy, TargetSpec.OpenOptions o) {
        if (o.createBytes() <= 0) {
            throw new TargetPolicyException(
                    Rule.CREATE,
                    p + " does not exist, and nothing asked to create it: ask for "
                            + "it by name (OpenOptions.create(SIZE); ubd: --create SIZE), or create the file first");
        }
        if (f.readOnly()) {
            throw new TargetPolicyException(
                    Rule.CREATE,
                    p + " does not exist, and a read-only target is never "
                            + "created: create the file first, or open it read-write");
        }
        if (o.createBytes() > policy.maxCreateBytes()) {
            throw new TargetPolicyException(
                    Rule.CREATE,
                    policy.maxCreateBytes() == 0
                            ? "this policy creates no file; " + p + " does not exist: create it first"
                            : "creating " + p + " with " + o.createBytes() + " bytes passes this policy's most, "
                                    + policy.maxCreateBytes() + ": ask for less");
        }
        int fd = Libc.openat(
                dirFd,
                name,
                Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_RDWR | Libc.O_CLOEXEC | Libc.O_NOCTTY,
                CREATE_MODE);
        if (fd == -Errno.EEXIST) {
            throw new TargetPolicyException(
                    Rule.CREATE,
                    p + " appeared while it was being created (a file or symbolic "
                            + "link put there meanwhile): nothing was created; try again");
        }
        if (fd < 0) {
            throw new UbdException("cannot create " + p + ": " + Errno.describe(-fd), -fd);
        }
        int r = Libc.ftruncate(fd, o.createBytes());
        if (r < 0) {
            Libc.close(fd);
            File created = p.toFile();
            boolean removed = created.delete();
            throw new UbdException(
                    "cannot make the new file " + p + " " + o.createBytes() + " bytes long: " + Errno.describe(-r)
                            + (removed ? " (it was removed again)" : ""),
                    -r);
        }
        return fd;
    }

    /** Checks what the descriptor names and opens it for IO (closing {@code fd} in every case). */
    private static FileBackend adopt(
            Path p,
            int fd,
            FileBackend.Options fo,
            TargetSpec.File f,
            TargetPolicy policy,
            TargetSpec.OpenOptions o,
            boolean blockDevices) {
        long[] st = new long[Libc.STAT_VALUES];
        int r = Libc.fstat(fd, st);
        if (r < 0) {
            Libc.close(fd);
            throw new UbdException("cannot stat " + p + ": " + Errno.describe(-r), -r);
        }
        int type = (int) st[Libc.STAT_MODE] & Libc.S_IFMT;
        if (type == Libc.S_IFLNK) {
            Libc.close(fd);
            throw new TargetPolicyException(
                    Rule.FILE_SYMLINK,
                    p + " is a symbolic link: name the file itself (by its " + "real path in the allowed directory)");
        }
        if (type != Libc.S_IFREG && !(type == Libc.S_IFBLK && blockDevices)) {
            Libc.close(fd);
            throw new TargetPolicyException(
                    Rule.FILE_TYPE,
                    p + " is " + FileBackend.describeType(type) + ": a file "
                            + "target must be a regular file"
                            + (type == Libc.S_IFBLK ? " (or a block device the policy names)" : ""));
        }
        long grow = 0;
        if (type == Libc.S_IFREG && o.growBytes() > st[Libc.STAT_SIZE] && !f.readOnly()) {
            if (!policy.allowsGrow() || o.growBytes() > policy.maxCreateBytes()) {
                Libc.close(fd);
                throw new TargetPolicyException(
                        Rule.GROW,
                        p + " is shorter than the " + o.growBytes() + " bytes asked "
                                + "for, and this policy "
                                + (policy.allowsGrow()
                                        ? "grows files to at most " + policy.maxCreateBytes() + " bytes"
                                        : "grows no file")
                                + ": make the file larger first");
            }
            grow = o.growBytes();
        }
        return FileBackend.open(p, fd, fo.createSize(grow), blockDevices, policy.exclusiveBlockDevices());
    }
}

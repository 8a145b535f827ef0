package dev.reactorubd.targets.rbd;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * The librados and librbd functions the RBD target calls, through {@code java.lang.foreign}. Each returns what the C
 * function returns: 0 (or a count) on success, {@code -errno} on failure. The libraries are opened on the first
 * {@link #get()}, not when this class is loaded elsewhere, so that a process without Ceph's libraries loses only the
 * RBD target.
 *
 * <p>Which calls block: {@code rados_connect}, {@code rbd_open}, {@code rbd_close}, {@code rbd_get_size} and the
 * watch calls wait for the cluster, and are called off the event loops only. The {@code rbd_aio_*} submissions return
 * at once (librbd's {@code rbd_non_blocking_aio}, on by default, hands them to its own threads), and their completions
 * arrive on librbd's threads through {@link #completionStub()}.
 */
final class Librbd {
    /** The soname Debian's librados2 installs. */
    static final String LIBRADOS = "librados.so.2";
    /** The soname Debian's librbd1 installs. */
    static final String LIBRBD = "librbd.so.1";
    /** {@code RBD_WRITE_ZEROES_FLAG_THICK_PROVISION}: zero by writing, keeping the range allocated. */
    static final int WRITE_ZEROES_THICK = 1;

    private static final Linker LINKER = Linker.nativeLinker();

    /** The result of the first load: the bindings, or why there are none. */
    private static final class Holder {
        static final Object LOADED = load();
    }

    final MethodHandle radosCreate2;
    final MethodHandle radosConfReadFile;
    final MethodHandle radosConfSet;
    final MethodHandle radosConnect;
    final MethodHandle radosShutdown;
    final MethodHandle ioctxCreate;
    final MethodHandle ioctxDestroy;
    final MethodHandle open;
    final MethodHandle openReadOnly;
    final MethodHandle close;
    final MethodHandle getSize;
    final MethodHandle aioCreateCompletion;
    final MethodHandle aioRead;
    final MethodHandle aioWrite;
    final MethodHandle aioFlush;
    final MethodHandle aioDiscard;
    final MethodHandle aioWriteZeroes;
    final MethodHandle aioReturnValue;
    final MethodHandle aioRelease;
    final MethodHandle updateWatch;
    final MethodHandle updateUnwatch;
    final MethodHandle invalidateCache;
    private final MemorySegment completionStub;
    private final MemorySegment updateStub;

    private Librbd(SymbolLookup rados, SymbolLookup rbd) throws ReflectiveOperationException {
        radosCreate2 =
                bind(rados, "rados_create2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
        radosConfReadFile = bind(rados, "rados_conf_read_file", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        radosConfSet = bind(rados, "rados_conf_set", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        radosConnect = bind(rados, "rados_connect", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        radosShutdown = bind(rados, "rados_shutdown", FunctionDescriptor.ofVoid(ADDRESS));
        ioctxCreate = bind(rados, "rados_ioctx_create", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        ioctxDestroy = bind(rados, "rados_ioctx_destroy", FunctionDescriptor.ofVoid(ADDRESS));
        open = bind(rbd, "rbd_open", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        openReadOnly =
                bind(rbd, "rbd_open_read_only", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        close = bind(rbd, "rbd_close", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        getSize = bind(rbd, "rbd_get_size", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        aioCreateCompletion =
                bind(rbd, "rbd_aio_create_completion", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        aioRead = bind(
                rbd, "rbd_aio_read", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS));
        aioWrite = bind(
                rbd,
                "rbd_aio_write2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT));
        aioFlush = bind(rbd, "rbd_aio_flush", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        aioDiscard =
                bind(rbd, "rbd_aio_discard", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
        aioWriteZeroes = bind(
                rbd,
                "rbd_aio_write_zeroes",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT));
        aioReturnValue = bind(rbd, "rbd_aio_get_return_value", FunctionDescriptor.of(JAVA_LONG, ADDRESS));
        aioRelease = bind(rbd, "rbd_aio_release", FunctionDescriptor.ofVoid(ADDRESS));
        updateWatch =
                bind(rbd, "rbd_update_watch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        updateUnwatch = bind(rbd, "rbd_update_unwatch", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        invalidateCache = bind(rbd, "rbd_invalidate_cache", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandles.Lookup lookup = MethodHandles.lookup();
        completionStub = LINKER.upcallStub(
                lookup.findStatic(
                        AioCompletions.class,
                        "completed",
                        MethodType.methodType(void.class, MemorySegment.class, MemorySegment.class)),
                FunctionDescriptor.ofVoid(ADDRESS, ADDRESS),
                Arena.global());
        updateStub = LINKER.upcallStub(
                lookup.findStatic(ImageWatch.class, "updated", MethodType.methodType(void.class, MemorySegment.class)),
                FunctionDescriptor.ofVoid(ADDRESS),
                Arena.global());
    }

    /**
     * The bindings, loading librados and librbd on the first call.
     *
     * @return the bindings
     * @throws RbdException ({@link RbdException.Reason#LIBRARY_MISSING}) when a library cannot be opened
     */
    static Librbd get() {
        Object loaded = Holder.LOADED;
        if (loaded instanceof Librbd l) {
            return l;
        }
        throw new RbdException(RbdException.Reason.LIBRARY_MISSING, (String) loaded, 0, null);
    }

    /** {@return whether librados and librbd could be opened in this process} */
    static boolean available() {
        return Holder.LOADED instanceof Librbd;
    }

    private static Object load() {
        SymbolLookup rados;
        SymbolLookup rbd;
        try {
            rados = SymbolLookup.libraryLookup(LIBRADOS, Arena.global());
        } catch (IllegalArgumentException e) {
            return "cannot open " + LIBRADOS + " (" + e.getMessage() + "): the RBD target needs Ceph's client "
                    + "libraries; install them (Debian: apt-get install librbd1)";
        }
        try {
            rbd = SymbolLookup.libraryLookup(LIBRBD, Arena.global());
        } catch (IllegalArgumentException e) {
            return "cannot open " + LIBRBD + " (" + e.getMessage() + "): the RBD target needs Ceph's client "
                    + "libraries; install them (Debian: apt-get install librbd1)";
        }
        try {
            return new Librbd(rados, rbd);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "librados/librbd lack a function the RBD target calls (" + e.getMessage() + "): install Ceph 16 "
                    + "(pacific) or newer (Debian: apt-get install librbd1)";
        }
    }

    private static MethodHandle bind(SymbolLookup lib, String name, FunctionDescriptor fd) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new IllegalStateException("no symbol " + name));
        return LINKER.downcallHandle(symbol, fd);
    }

    /** {@return the C callback {@code void (*)(rbd_completion_t, void *)} that {@link AioCompletions} answers} */
    MemorySegment completionStub() {
        return completionStub;
    }

    /** {@return the C callback {@code void (*)(void *)} that {@link ImageWatch} answers} */
    MemorySegment updateStub() {
        return updateStub;
    }

    /** Invokes a handle of a {@code void} function, rethrowing what the JVM's linkage could throw as it is. */
    static void callVoid(MethodHandle h, Object... args) {
        try {
            h.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Invokes a handle of an {@code int} function, rethrowing what the JVM's linkage could throw as it is. */
    static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}

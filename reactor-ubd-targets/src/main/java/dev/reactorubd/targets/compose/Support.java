package dev.reactorubd.targets.compose;

import dev.reactorubd.Errno;
import dev.reactorubd.UbdIoException;
import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;
import dev.reactorubd.server.BlockBackend.Capability;
import dev.reactorubd.server.RequestChecks;
import java.util.EnumSet;
import java.util.Set;
import java.util.function.Supplier;
import reactor.core.Exceptions;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/** What the operators share: guarded calls into parts, range checks, capabilities, binding and closing parts. */
final class Support {
    private Support() {}

    /**
     * Calls a part: a thrown exception or a null Mono becomes an error signal, so that a misbehaving part fails its
     * piece of the request rather than the operator around it.
     */
    @SuppressWarnings("unchecked")
    static <T> Mono<T> call(Supplier<? extends Mono<? extends T>> call) {
        Mono<? extends T> m;
        try {
            m = call.get();
        } catch (Throwable e) {
            Exceptions.throwIfJvmFatal(e);
            return Mono.error(e);
        }
        return m == null ? Mono.error(new UbdIoException(Errno.EIO, "a part returned no Mono")) : (Mono<T>) m;
    }

    static UbdIoException ioError(int errno, String message) {
        return new UbdIoException(errno, message);
    }

    /** An EINVAL error when {@code [offset, offset + length)} is not inside {@code [0, size)}; else null. */
    static <T> Mono<T> outOfRange(long size, long offset, long length, Object who) {
        return RequestChecks.checkRange(size, offset, length, who);
    }

    /** EOPNOTSUPP when {@code c} is not among {@code caps}; else null. */
    static <T> Mono<T> unsupported(Set<Capability> caps, Capability c, Object who) {
        return caps.contains(c)
                ? null
                : Mono.error(new UbdIoException(Errno.EOPNOTSUPP, c + " is not supported by every part of " + who));
    }

    /**
     * What a backend made of {@code parts} serves: DISCARD and WRITE_ZEROES when every part does; FLUSH when any part
     * has a volatile cache (a flush reaches only those parts, so one part's cache is never left unflushed); FUA when
     * FLUSH is served and every part that has FLUSH also has FUA (the others write durably anyway).
     */
    static Set<Capability> combined(BlockBackend[] parts) {
        EnumSet<Capability> all = EnumSet.of(Capability.DISCARD, Capability.WRITE_ZEROES);
        boolean flush = false;
        boolean fua = true;
        for (BlockBackend p : parts) {
            Set<Capability> c = p.capabilities();
            all.retainAll(c);
            if (c.contains(Capability.FLUSH)) {
                flush = true;
                fua &= c.contains(Capability.FUA);
            }
        }
        if (flush) {
            all.add(Capability.FLUSH);
            if (fua) {
                all.add(Capability.FUA);
            }
        }
        return Set.copyOf(all);
    }

    static boolean hasFlush(BlockBackend part) {
        return part.capabilities().contains(Capability.FLUSH);
    }

    /** Binds every part to {@code queue}, in order (one after the other); a part that binds nothing is an error. */
    static Mono<BlockBackend[]> bindAll(BlockBackend[] parts, UbdQueue queue) {
        return Flux.fromArray(parts)
                .concatMap(p -> p.bind(queue)
                        .switchIfEmpty(Mono.error(() -> new IllegalStateException(p + " bound nothing to " + queue))))
                .collectList()
                .map(list -> list.toArray(new BlockBackend[0]));
    }

    /** Closes every part, one after the other; every part is closed even when one fails, then the first error. */
    static Mono<Void> closeAll(BlockBackend[] parts) {
        return Flux.fromArray(parts)
                .concatMapDelayError(p -> Support.<Void>call(p::close))
                .then();
    }

    /** "EIO: message" for logs and health reasons. */
    static String describe(Throwable e) {
        return Errno.name(UbdIoException.errnoOf(e)) + ": " + e.getMessage();
    }

    static BlockBackend[] checkParts(String what, BlockBackend[] parts, int min) {
        if (parts == null || parts.length < min) {
            throw new IllegalArgumentException(what + " needs at least " + min + " part(s)");
        }
        for (int i = 0; i < parts.length; i++) {
            if (parts[i] == null) {
                throw new IllegalArgumentException(what + ": part " + i + " is null");
            }
        }
        return parts.clone();
    }
}

package dev.reactorubd.targets.compose;

import dev.reactorubd.UbdException;

/**
 * {@link MirrorBackend#replace} refused: the replacement cannot take the slot ({@link Reason#UNSUITABLE}: too small,
 * missing a capability the mirror offers, holding another mirror's or other data, already a replica), or the mirror
 * cannot give the slot up now ({@link Reason#NOT_NOW}: no other replica is in sync to copy from, the slot is being
 * replaced already, the mirror is closed). The message says which and what to do. Nothing was changed: the mirror
 * keeps its replica, and the replacement was neither written nor closed. Its {@link #kind()} is
 * {@link UbdException.Kind#INVALID_ARGUMENT} for an unsuitable replacement and {@link UbdException.Kind#DEVICE_STATE}
 * for a mirror that cannot give the slot up now.
 */
public final class MirrorReplaceException extends UbdException {
    private static final long serialVersionUID = 1L;

    /** Why a replace was refused. */
    public enum Reason {
        /** The replacement cannot take the slot: give another. */
        UNSUITABLE,
        /** The mirror's state forbids it now: retry once it changed (for example once a resync ended). */
        NOT_NOW
    }

    /** Why it was refused. */
    private final Reason reason;

    /**
     * A refused replace.
     *
     * @param reason  why
     * @param message what is wrong and what to do
     */
    public MirrorReplaceException(Reason reason, String message) {
        super(reason == Reason.UNSUITABLE ? Kind.INVALID_ARGUMENT : Kind.DEVICE_STATE, message, 0, null);
        this.reason = reason;
    }

    /** {@return why the replace was refused} */
    public Reason reason() {
        return reason;
    }
}

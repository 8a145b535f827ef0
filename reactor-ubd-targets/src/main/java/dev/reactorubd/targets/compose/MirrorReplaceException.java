package dev.reactorubd.targets.compose;

import dev.reactorubd.UbdException;

/**
 * {@link MirrorBackend#replace} refused: the replacement cannot take the slot ({@link Kind#UNSUITABLE}: too small,
 * missing a capability the mirror offers, holding another mirror's or other data, already a replica), or the mirror
 * cannot give the slot up now ({@link Kind#NOT_NOW}: no other replica is in sync to copy from, the slot is being
 * replaced already, the mirror is closed). The message says which and what to do. Nothing was changed: the mirror
 * keeps its replica, and the replacement was neither written nor closed.
 */
public final class MirrorReplaceException extends UbdException {
    private static final long serialVersionUID = 1L;

    /** Why a replace was refused. */
    public enum Kind {
        /** The replacement cannot take the slot: give another. */
        UNSUITABLE,
        /** The mirror's state forbids it now: retry once it changed (for example once a resync ended). */
        NOT_NOW
    }

    /** Why it was refused. */
    private final Kind kind;

    /**
     * A refused replace.
     *
     * @param kind    why
     * @param message what is wrong and what to do
     */
    public MirrorReplaceException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    /** {@return why the replace was refused} */
    public Kind kind() {
        return kind;
    }
}

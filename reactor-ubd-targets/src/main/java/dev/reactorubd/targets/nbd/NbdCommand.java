package dev.reactorubd.targets.nbd;

import io.netty.buffer.ByteBuf;
import java.util.concurrent.ScheduledFuture;

/**
 * One request on the wire, from submission to its single answer. Every field but the final ones is touched only on
 * its connection's loop.
 */
final class NbdCommand {
    /** Receives a command's single answer, on the connection's loop (or the submitter's thread if the loop is gone). */
    interface Completion {
        /** The command succeeded; {@code readData} (a READ's payload, else null) is the receiver's to release. */
        void succeeded(ByteBuf readData);

        void failed(Throwable error);

        /**
         * Whether the caller gave the command up (its Mono was cancelled, say by the server's request timeout): it is
         * then never sent again, and a WRITE of it still in flight resets its connection. Read on the loop.
         *
         * @return whether the command was given up
         */
        default boolean isCancelled() {
            return false;
        }
    }

    /** {@return whether the command changes the export: a WRITE, TRIM or WRITE_ZEROES} */
    boolean modifies() {
        return type == NbdProtocol.CMD_WRITE || type == NbdProtocol.CMD_TRIM || type == NbdProtocol.CMD_WRITE_ZEROES;
    }

    /** {@return whether its caller gave it up} */
    boolean abandoned() {
        return completion.isCancelled();
    }

    final int type;
    final int flags;
    final long offset;
    final int length;
    /** A WRITE's payload: this command's own reference, released when it is answered. */
    ByteBuf data;
    /**
     * For a WRITE whose payload is a ublk request's registered pages (zero copy): their slot in the loop ring's buffer
     * table, else -1; {@link #data} is null then.
     */
    final int bufferIndex;
    /** Where this command's payload starts in the registered buffer (a long write is sent in parts). */
    final int bufferOffset;
    /** {@link System#nanoTime()} by which it must be answered. */
    final long deadline;

    final Completion completion;

    long cookie;
    /** The session it was sent on and that has not answered yet; null while it waits to be sent. */
    NbdSession session;

    ScheduledFuture<?> timer;
    boolean finished;
    /** How many times it was sent (more than once after reconnects). */
    int sends;
    /** For a FLUSH: the connection's acknowledged writes when it was sent, which its success makes durable. */
    long covers;

    NbdCommand(int type, int flags, long offset, int length, ByteBuf data, long deadline, Completion completion) {
        this(type, flags, offset, length, data, -1, 0, deadline, completion);
    }

    NbdCommand(
            int type,
            int flags,
            long offset,
            int length,
            ByteBuf data,
            int bufferIndex,
            int bufferOffset,
            long deadline,
            Completion completion) {
        this.type = type;
        this.flags = flags;
        this.offset = offset;
        this.length = length;
        this.data = data;
        this.bufferIndex = bufferIndex;
        this.bufferOffset = bufferOffset;
        this.deadline = deadline;
        this.completion = completion;
    }

    @Override
    public String toString() {
        return NbdProtocol.commandName(type) + " @" + offset + "+" + length
                + ((flags & NbdProtocol.CMD_FLAG_FUA) != 0 ? " FUA" : "")
                + ((flags & NbdProtocol.CMD_FLAG_NO_HOLE) != 0 ? " NO_HOLE" : "");
    }
}

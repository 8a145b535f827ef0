package dev.reactorubd.targets.nbd;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;

/** Joins the commands of a split request: READ data in order, or the first error. */
final class SplitCommand {
    private final ByteBuf[] data;
    private final NbdCommand.Completion whole;
    private int remaining;
    private boolean failed;

    SplitCommand(int count, boolean read, NbdCommand.Completion whole) {
        this.data = read ? new ByteBuf[count] : null;
        this.remaining = count;
        this.whole = whole;
    }

    NbdCommand.Completion part(int index) {
        return new NbdCommand.Completion() {
            @Override
            public void succeeded(ByteBuf readData) {
                partDone(index, readData, null);
            }

            @Override
            public boolean isCancelled() {
                return whole.isCancelled();
            }

            @Override
            public void failed(Throwable error) {
                partDone(index, null, error);
            }
        };
    }

    private synchronized void partDone(int index, ByteBuf readData, Throwable error) {
        if (failed) {
            if (readData != null) {
                readData.release();
            }
            return;
        }
        if (error != null) {
            failed = true;
            if (data != null) {
                for (ByteBuf b : data) {
                    if (b != null) {
                        b.release();
                    }
                }
            }
            whole.failed(error);
            return;
        }
        if (data != null) {
            data[index] = readData;
        } else if (readData != null) {
            readData.release();
        }
        if (--remaining == 0) {
            if (data == null) {
                whole.succeeded(null);
            } else {
                CompositeByteBuf all = Unpooled.compositeBuffer(data.length);
                for (ByteBuf b : data) {
                    all.addComponent(true, b);
                }
                whole.succeeded(all);
            }
        }
    }
}

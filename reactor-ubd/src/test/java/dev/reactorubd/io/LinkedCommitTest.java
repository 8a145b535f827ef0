package dev.reactorubd.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.Errno;
import dev.reactorubd.IoOp;
import dev.reactorubd.sys.UblkIo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.concurrent.DefaultEventExecutor;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.BaseSubscriber;

/**
 * A request's commit linked behind the operation that serves it in place: committed exactly once, with the right
 * result, whichever order the answer, the commit's cancellation and the tag's next request arrive in. The kernel's
 * side is a transport that records commits; the linking itself is LoopIoTest's (host) and ZeroCopyDeviceTest's (6.18).
 */
class LinkedCommitTest {
    private static final int READ = UblkIo.OP_READ;
    private static final int WRITE = UblkIo.OP_WRITE;
    private DefaultEventExecutor loop;
    private UbdQueue queue;
    private final List<String> commits = new CopyOnWriteArrayList<>();
    private final List<IoRequest> received = new CopyOnWriteArrayList<>();

    /** What the queue handed the transport: where the kernel's side reports to. */
    private volatile QueueEvents events;

    /** Records commits; links may follow requests served in place. */
    private final class Recording implements QueueTransport {
        @Override
        public void fetchAll(QueueEvents events) {
            LinkedCommitTest.this.events = events;
        }

        @Override
        public void copyIn(int tag, ByteBuf dst, int length) {
            throw new AssertionError("requests served in place are not copied");
        }

        @Override
        public void copyOut(int tag, ByteBuf src, int length) {
            throw new AssertionError("requests served in place are not copied");
        }

        @Override
        public boolean canLinkCommit() {
            return true;
        }

        @Override
        public void commitAndFetch(int tag, int result) {
            commits.add(tag + ":" + result);
        }
    }

    @BeforeEach
    void queue() throws Exception {
        loop = new DefaultEventExecutor();
        queue = new UbdQueue(0, 0, 4, loop, UnpooledByteBufAllocator.DEFAULT);
        queue.serveInPlace(true);
        queue.recycleRequests(true);
        queue.requests().subscribe(new BaseSubscriber<>() {
            @Override
            protected void hookOnNext(IoRequest r) {
                received.add(r);
            }
        });
        queue.start(new Recording());
        onLoop(() -> null);
    }

    @AfterEach
    void stop() {
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private <T> T onLoop(Callable<T> task) throws Exception {
        return loop.submit(task).get(10, TimeUnit.SECONDS);
    }

    private void run(Runnable task) throws Exception {
        onLoop(() -> {
            task.run();
            return null;
        });
    }

    /** A request served in place arrives on tag 0, and its backend links the commit. */
    private IoRequest fetchAndLink(int op) throws Exception {
        int before = received.size();
        run(() -> events.onFetched(0, op, 8192, 4096, 7));
        assertEquals(before + 1, received.size());
        IoRequest r = received.get(before);
        assertEquals(7, r.registeredBuffer());
        run(() -> {
            Runnable link = r.linkedCommit();
            assertNotNull(link);
            link.run();
        });
        return r;
    }

    @Test
    void aLinkThatWentThroughIsTheOnlyCommit() throws Exception {
        IoRequest r = fetchAndLink(READ);
        assertEquals(List.of("0:4096"), commits);
        run(r::complete);
        assertEquals(List.of("0:4096"), commits, "answered: the link already carries the commit");
        assertEquals(0, queue.inFlightCount());
        assertEquals(1, queue.completedCount());
        run(() -> events.onFetched(0, WRITE, 0, 4096, 7));
        assertEquals(2, received.size(), "the tag's next request is taken as usual");
    }

    @Test
    void aCancelledLinkBeforeTheAnswerLeavesTheCommitToTheAnswer() throws Exception {
        IoRequest r = fetchAndLink(READ);
        assertTrue(onLoop(() -> events.onLinkedCommitCancelled(0)));
        assertEquals(List.of("0:4096"), commits);
        run(() -> r.fail(Errno.EIO));
        assertEquals(List.of("0:4096", "0:-5"), commits);
        assertEquals(1, queue.failedCount());
    }

    @Test
    void aCancelledLinkAfterTheAnswerCommitsTheHeldResult() throws Exception {
        IoRequest r = fetchAndLink(WRITE);
        run(() -> r.fail(Errno.ENOSPC));
        assertEquals(List.of("0:4096"), commits, "the answer waits for the link's fate");
        assertTrue(onLoop(() -> events.onLinkedCommitCancelled(0)));
        assertEquals(List.of("0:4096", "0:-" + Errno.ENOSPC), commits);
        assertFalse(onLoop(() -> events.onLinkedCommitCancelled(0)), "a second cancellation is not the queue's");
    }

    @Test
    void theNextRequestArrivingBeforeTheAnswerWaitsForIt() throws Exception {
        IoRequest r = fetchAndLink(READ);
        run(() -> events.onFetched(0, WRITE, 0, 512, 7));
        assertEquals(1, received.size(), "the tag's previous request is still being answered");
        run(r::complete);
        assertEquals(List.of("0:4096"), commits);
        assertEquals(2, received.size());
        IoRequest next = received.get(1);
        assertEquals(IoOp.WRITE, next.op());
        assertEquals(512, next.length());
        assertEquals(1, queue.inFlightCount());
        run(next::complete);
        assertEquals(List.of("0:4096", "0:512"), commits, "the next request is committed the usual way");
    }

    @Test
    void linkingTwiceCommitsOnce() throws Exception {
        IoRequest r = fetchAndLink(READ);
        run(() -> r.linkedCommit().run());
        assertEquals(List.of("0:4096"), commits);
    }

    @Test
    void onlyRequestsServedInPlaceOfferALink() throws Exception {
        run(() -> events.onFetched(1, UblkIo.OP_FLUSH, 0, 0, -1));
        IoRequest flush = received.get(0);
        assertNull(onLoop(flush::linkedCommit));
        run(flush::complete);
        assertEquals(List.of("1:0"), commits);
        assertFalse(onLoop(() -> events.onLinkedCommitCancelled(1)), "a cancellation without a link is not ours");
    }

    @Test
    void anAbortClearsTheLink() throws Exception {
        IoRequest r = fetchAndLink(WRITE);
        run(() -> events.onAborted(0));
        assertEquals(0, queue.inFlightCount());
        assertFalse(onLoop(() -> events.onLinkedCommitCancelled(0)));
        run(r::complete); // the queue ended for this tag: nobody waits, nothing is committed
        assertEquals(List.of("0:4096"), commits);
    }
}

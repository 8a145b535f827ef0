package dev.reactorubd.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.concurrent.ImmediateEventExecutor;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The waiting-request queue: first in first out, bounded, and safe with one producer and one consumer thread. */
class RequestQueueTest {
    private static final UbdQueue OWNER =
            new UbdQueue(0, 0, 1, ImmediateEventExecutor.INSTANCE, UnpooledByteBufAllocator.DEFAULT);

    private static List<IoRequest> requests(int n) {
        List<IoRequest> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(new IoRequest(OWNER, 0, 0, i, 512));
        }
        return l;
    }

    @Test
    void holdsAtLeastItsCapacityInOrderAndRefusesMore() {
        for (int capacity : new int[] {1, 2, 3, 100, 128}) {
            RequestQueue q = new RequestQueue(capacity);
            List<IoRequest> rs = requests(capacity);
            rs.forEach(r -> assertTrue(q.offer(r)));
            assertEquals(capacity, q.size());
            int slots = capacity == 1 ? 1 : Integer.highestOneBit(capacity - 1) << 1;
            for (int i = capacity; i < slots; i++) {
                assertTrue(q.offer(requests(1).get(0)), "room up to the power of two");
            }
            assertFalse(q.offer(requests(1).get(0)), "full at " + slots);
            for (IoRequest r : rs) {
                assertSame(r, q.peek());
                assertSame(r, q.poll());
            }
            q.clear();
            assertTrue(q.isEmpty());
            assertNull(q.poll());
            assertEquals(0, q.size());
        }
        assertThrows(NullPointerException.class, () -> new RequestQueue(4).offer(null));
    }

    @Test
    void oneProducerAndOneConsumerThreadSeeEveryRequestOnceInOrder() throws Exception {
        RequestQueue q = new RequestQueue(8);
        List<IoRequest> rs = requests(64);
        int n = 200_000;
        CompletableFuture<Void> producer = CompletableFuture.runAsync(() -> {
            for (int i = 0; i < n; i++) {
                while (!q.offer(rs.get(i % rs.size()))) {
                    Thread.onSpinWait();
                }
            }
        });
        for (int i = 0; i < n; i++) {
            IoRequest r;
            while ((r = q.poll()) == null) {
                Thread.onSpinWait();
            }
            assertSame(rs.get(i % rs.size()), r, "request " + i);
        }
        producer.get(30, TimeUnit.SECONDS);
        assertTrue(q.isEmpty());
    }
}

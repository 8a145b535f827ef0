package dev.reactorubd.targets.file;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** Later writes wait for a given-up write still in the kernel only where their ranges overlap, and go once it is back. */
class GivenUpWritesTest {
    @Test
    void overlappingWritesWaitForTheGivenUpOneAndTheOthersGoAtOnce() {
        GivenUpWrites g = new GivenUpWrites();
        List<String> started = new CopyOnWriteArrayList<>();
        g.whenClear(0, 4096, () -> started.add("none given up"));
        Object a = g.add(8192, 8192); // [8192, 16384)
        Object b = g.add(65536, 4096); // [65536, 69632)
        g.whenClear(0, 8192, () -> started.add("before a")); // touches a's start: no overlap
        g.whenClear(16384, 4096, () -> started.add("after a")); // right after a: no overlap
        g.whenClear(12288, 8192, () -> started.add("over a")); // overlaps a
        g.whenClear(60000, 10000, () -> started.add("over b")); // overlaps b
        g.whenClear(4096, 65536, () -> started.add("over a and b")); // overlaps both
        assertEquals(List.of("none given up", "before a", "after a"), started);
        g.remove(a);
        assertEquals(List.of("none given up", "before a", "after a", "over a"), started, "b still holds two");
        g.remove(b);
        assertEquals(List.of("none given up", "before a", "after a", "over a", "over b", "over a and b"), started);
        g.whenClear(8192, 4096, () -> started.add("later"));
        assertEquals("later", started.get(started.size() - 1));
    }
}

package dev.reactorubd.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** A property that fails names the seed of the case, and that seed runs the same case again, alone. */
class CasesTest {
    @Test
    void aFailingCaseNamesItsSeedAndTheSeedReplaysIt() {
        Gen<List<Integer>> lists = Gen.ints(0, 1000).list(1, 5);
        List<List<Integer>> failing = new ArrayList<>();
        AssertionError e = assertThrows(
                AssertionError.class,
                () -> Cases.forAll(1000, lists, l -> {
                    if (l.stream().anyMatch(v -> v > 900)) {
                        failing.add(l);
                        throw new AssertionError("a value over 900");
                    }
                }));
        Matcher m = Pattern.compile("seed (-?\\d+) \\(run it alone with -Dubd\\.seed=\\1\\)")
                .matcher(e.getMessage());
        assertTrue(m.find(), e.getMessage());
        assertTrue(e.getMessage().contains(failing.getFirst().toString()), "names the value: " + e.getMessage());

        List<List<Integer>> replayed = new ArrayList<>();
        System.setProperty(Cases.SEED_PROPERTY, m.group(1));
        try {
            assertThrows(
                    AssertionError.class,
                    () -> Cases.forAll(1000, lists, l -> {
                        replayed.add(l);
                        throw new AssertionError("again");
                    }));
        } finally {
            System.clearProperty(Cases.SEED_PROPERTY);
        }
        assertEquals(List.of(failing.getFirst()), replayed, "the seed gives that case, and only it");
    }

    @Test
    void weightsAndRangesHold() {
        Gen<Integer> g = Gen.<Integer>weighted().value(9, 0).value(1, 1);
        int ones = 0;
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 10_000; i++) {
            ones += g.next(r);
            long v = Gen.longs(Long.MAX_VALUE - 3, Long.MAX_VALUE).next(r);
            assertTrue(v >= Long.MAX_VALUE - 3, "in range: " + v);
            int k = Gen.ints(-2, 2).next(r);
            assertTrue(k >= -2 && k <= 2, "in range: " + k);
        }
        assertTrue(ones > 800 && ones < 1200, "about a tenth: " + ones);
    }
}

package dev.reactorubd.testing;

import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Runs a property over generated cases: each case has a seed of its own, drawn from a run seed (the clock's, or
 * {@code -Dubd.seed}); a failing case's message names its seed and value, and {@code -Dubd.seed=N} with that seed runs
 * that case alone, first. Plain JUnit: a property is a {@code @Test} that calls {@link #forAll}.
 */
public final class Cases {
    /** The property that replays one case's seed. */
    public static final String SEED_PROPERTY = "ubd.seed";

    private Cases() {}

    /**
     * Checks {@code check} on {@code tries} values of {@code gen}, stopping at the first that fails.
     *
     * @param tries how many cases (one with {@code -Dubd.seed})
     * @param gen the cases
     * @param check the property: throws (an assertion) when it does not hold for a case
     * @param <T> a case
     * @throws AssertionError naming the failing case, its seed and the number of cases that passed before it
     */
    public static <T> void forAll(int tries, Gen<T> gen, Consumer<? super T> check) {
        String replay = System.getProperty(SEED_PROPERTY);
        if (replay != null && !replay.isBlank()) {
            runOne(Long.parseLong(replay.trim()), 0, gen, check);
            return;
        }
        SplittableRandom seeds = new SplittableRandom(System.nanoTime());
        for (int i = 0; i < tries; i++) {
            runOne(seeds.nextLong(), i, gen, check);
        }
    }

    private static <T> void runOne(long seed, int passed, Gen<T> gen, Consumer<? super T> check) {
        T value = gen.next(new SplittableRandom(seed));
        try {
            check.accept(value);
        } catch (RuntimeException | AssertionError e) {
            throw new AssertionError(
                    "case failed after " + passed + " passed, seed " + seed + " (run it alone with -D" + SEED_PROPERTY
                            + "=" + seed + "): " + value + ": " + e,
                    e);
        }
    }
}

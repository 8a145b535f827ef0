package dev.reactorubd.testing;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Function;

/**
 * A generator of test values from a seeded source: what a property test draws its cases from ({@link Cases}). A value
 * depends on nothing but the random source, so one seed gives one case again. Generators compose: {@link #map}, the
 * choices ({@link #oneOf}, {@link #weighted}), collections ({@link #list}, {@link #set}), and a lambda for a record of
 * several ({@code r -> new Case(a.next(r), b.next(r))}).
 *
 * @param <T> the values
 */
@FunctionalInterface
public interface Gen<T> {
    /** The edge values that {@link #anyInt} and {@link #anyLong} mix in: where arithmetic and range checks break. */
    long[] EDGES = {0, 1, -1, 2, Integer.MAX_VALUE, Integer.MIN_VALUE, Long.MAX_VALUE, Long.MIN_VALUE};

    /**
     * The next value.
     *
     * @param random the source; the only one a generator may use
     * @return the value
     */
    T next(SplittableRandom random);

    /**
     * @param f what to make of each value
     * @param <R> what it makes
     * @return this generator's values, mapped
     */
    default <R> Gen<R> map(Function<? super T, ? extends R> f) {
        return r -> f.apply(next(r));
    }

    /**
     * @param f the generator to take the next value from, for each value of this one
     * @param <R> its values
     * @return values of the generators {@code f} makes
     */
    default <R> Gen<R> flatMap(Function<? super T, ? extends Gen<? extends R>> f) {
        return r -> f.apply(next(r)).next(r);
    }

    /**
     * @param probability of null, 0 to 1
     * @return this generator's values, or null with that probability
     */
    default Gen<T> orNull(double probability) {
        return r -> r.nextDouble() < probability ? null : next(r);
    }

    /**
     * @param min the fewest elements
     * @param max the most elements
     * @return lists of this generator's values
     */
    default Gen<List<T>> list(int min, int max) {
        return r -> {
            int n = min + r.nextInt(max - min + 1);
            List<T> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                out.add(next(r));
            }
            return Collections.unmodifiableList(out);
        };
    }

    /**
     * @param max the most elements (fewer when values repeat)
     * @return sets of this generator's values, in the order drawn
     */
    default Gen<Set<T>> set(int max) {
        return r -> {
            int n = r.nextInt(max + 1);
            Set<T> out = new LinkedHashSet<>();
            for (int i = 0; i < n; i++) {
                out.add(next(r));
            }
            return Collections.unmodifiableSet(out);
        };
    }

    /**
     * @param value the one value
     * @param <T> its type
     * @return always {@code value}
     */
    static <T> Gen<T> just(T value) {
        return r -> value;
    }

    /**
     * @param values the values, taken with equal chances
     * @param <T> their type
     * @return one of them
     */
    @SafeVarargs
    static <T> Gen<T> of(T... values) {
        List<T> copy = List.of(values);
        return r -> copy.get(r.nextInt(copy.size()));
    }

    /**
     * @param type an enum
     * @param <E> the enum
     * @return one of its constants
     */
    static <E extends Enum<E>> Gen<E> of(Class<E> type) {
        List<E> all = List.copyOf(EnumSet.allOf(type));
        return r -> all.get(r.nextInt(all.size()));
    }

    /**
     * @param gens generators, taken with equal chances
     * @param <T> their values
     * @return a value of one of them
     */
    @SafeVarargs
    static <T> Gen<T> oneOf(Gen<? extends T>... gens) {
        List<Gen<? extends T>> copy = List.of(gens);
        return r -> copy.get(r.nextInt(copy.size())).next(r);
    }

    /**
     * @param lists lists
     * @param <T> their elements
     * @return those lists, their elements in a random order
     */
    static <T> Gen<List<T>> shuffled(Gen<List<T>> lists) {
        return r -> {
            List<T> l = new ArrayList<>(lists.next(r));
            for (int i = l.size() - 1; i > 0; i--) {
                Collections.swap(l, i, r.nextInt(i + 1));
            }
            return Collections.unmodifiableList(l);
        };
    }

    /**
     * @return a builder of a choice between generators with weights
     * @param <T> their values
     */
    static <T> Weighted<T> weighted() {
        return new Weighted<>();
    }

    /**
     * @param min the least value
     * @param max the greatest value (inclusive)
     * @return ints in {@code [min, max]}, evenly
     */
    static Gen<Integer> ints(int min, int max) {
        return r -> (int) (min + r.nextLong((long) max - min + 1));
    }

    /** @return any int: mostly uniform, one in ten an edge value ({@link #EDGES}, narrowed) */
    static Gen<Integer> anyInt() {
        return r -> r.nextInt(10) == 0 ? (int) EDGES[r.nextInt(EDGES.length)] : r.nextInt();
    }

    /**
     * @param min the least value
     * @param max the greatest value (inclusive)
     * @return longs in {@code [min, max]}, evenly
     */
    static Gen<Long> longs(long min, long max) {
        if (max < Long.MAX_VALUE) {
            return r -> r.nextLong(min, max + 1);
        }
        return min == Long.MIN_VALUE ? SplittableRandom::nextLong : r -> r.nextLong(min - 1, max) + 1;
    }

    /** @return any long: mostly uniform, one in ten an edge value ({@link #EDGES}) */
    static Gen<Long> anyLong() {
        return r -> r.nextInt(10) == 0 ? EDGES[r.nextInt(EDGES.length)] : r.nextLong();
    }

    /** @return true or false, evenly */
    static Gen<Boolean> bools() {
        return SplittableRandom::nextBoolean;
    }

    /**
     * @param alphabet the characters to draw from
     * @param min the shortest length
     * @param max the longest length
     * @return strings of those characters
     */
    static Gen<String> strings(String alphabet, int min, int max) {
        return r -> {
            int n = min + r.nextInt(max - min + 1);
            StringBuilder b = new StringBuilder(n);
            for (int i = 0; i < n; i++) {
                b.append(alphabet.charAt(r.nextInt(alphabet.length())));
            }
            return b.toString();
        };
    }

    /**
     * A choice between generators, each taken in proportion to its weight.
     *
     * @param <T> their values
     */
    final class Weighted<T> implements Gen<T> {
        private final List<Integer> weights = new ArrayList<>();
        private final List<Gen<? extends T>> gens = new ArrayList<>();
        private int total;

        private Weighted() {}

        /**
         * @param weight its share, positive
         * @param gen a generator
         * @return this
         */
        public Weighted<T> add(int weight, Gen<? extends T> gen) {
            if (weight <= 0) {
                throw new IllegalArgumentException("a weight must be positive; was " + weight);
            }
            weights.add(weight);
            gens.add(gen);
            total += weight;
            return this;
        }

        /**
         * @param weight its share, positive
         * @param value a value
         * @return this
         */
        public Weighted<T> value(int weight, T value) {
            return add(weight, just(value));
        }

        @Override
        public T next(SplittableRandom random) {
            int pick = random.nextInt(total);
            for (int i = 0; i < gens.size(); i++) {
                pick -= weights.get(i);
                if (pick < 0) {
                    return gens.get(i).next(random);
                }
            }
            throw new IllegalStateException("no generator was added");
        }
    }
}

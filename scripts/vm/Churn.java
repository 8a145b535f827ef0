import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Pure Java, no native code of ours, no io_uring: three threads churn maps and strings for N seconds, which keeps
 * the JIT compiling, deoptimising and patching code on both CPUs. Used by scripts/vm/crash-probe to tell a JVM
 * crash caused by the emulated CPU from one caused by reactor-ubd.
 */
public final class Churn {
    public static void main(String[] args) throws Exception {
        long until = System.nanoTime() + Long.parseLong(args.length > 0 ? args[0] : "8") * 1_000_000_000L;
        Thread[] ts = new Thread[3];
        long[] sums = new long[ts.length];
        for (int i = 0; i < ts.length; i++) {
            int me = i;
            ts[i] = new Thread(() -> {
                ThreadLocalRandom r = ThreadLocalRandom.current();
                long sum = 0;
                while (System.nanoTime() < until) {
                    Map<String, Integer> m = new HashMap<>();
                    for (int k = 0; k < 2000; k++) {
                        String key = "k" + r.nextInt(5000) + (k % 3 == 0 ? "x" : "");
                        m.merge(key, k, Integer::sum);
                    }
                    for (Map.Entry<String, Integer> e : m.entrySet()) {
                        sum += e.getKey().hashCode() ^ e.getValue();
                    }
                }
                sums[me] = sum;
            });
            ts[i].start();
        }
        for (Thread t : ts) {
            t.join();
        }
        System.out.println("churn ok " + (sums[0] ^ sums[1] ^ sums[2]));
    }
}

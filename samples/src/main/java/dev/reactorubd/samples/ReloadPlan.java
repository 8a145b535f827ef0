package dev.reactorubd.samples;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * What a reload of {@code serve --config FILE} does, from the devices served and the file as it now reads: the lines
 * whose id is new are added, the ids no line names any more are removed, and a line whose id is served but whose
 * words changed is refused (a served device is not changed live) while that device goes on as it was.
 *
 * @param add the lines to add, in file order
 * @param remove the ids to stop and delete, in ascending order
 * @param refused the changed lines, in file order
 * @param unchanged how many devices stay as they are
 */
record ReloadPlan(
        List<ConfigFile.DeviceLine> add, List<Integer> remove, List<ConfigFile.DeviceLine> refused, int unchanged) {

    /** The plan from {@code served} (each served id and the words of its line) to {@code wanted}. */
    static ReloadPlan of(Map<Integer, List<String>> served, List<ConfigFile.DeviceLine> wanted) {
        List<ConfigFile.DeviceLine> add = new ArrayList<>();
        List<ConfigFile.DeviceLine> refused = new ArrayList<>();
        Set<Integer> gone = new TreeSet<>(served.keySet());
        int unchanged = 0;
        for (ConfigFile.DeviceLine l : wanted) {
            List<String> now = served.get(l.id());
            gone.remove(l.id());
            if (now == null) {
                add.add(l);
            } else if (now.equals(l.words())) {
                unchanged++;
            } else {
                refused.add(l);
            }
        }
        return new ReloadPlan(List.copyOf(add), List.copyOf(gone), List.copyOf(refused), unchanged);
    }
}

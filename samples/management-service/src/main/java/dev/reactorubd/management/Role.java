package dev.reactorubd.management;

import java.util.List;
import org.springframework.security.core.GrantedAuthority;
import org.springframework.security.core.authority.SimpleGrantedAuthority;

/**
 * What a caller of the service may do, given to each token, user and client certificate
 * ({@link SecurityConfiguration} has the rules).
 */
public enum Role {
    /** Lists and inspects devices, reads their statistics streams, the health and the Prometheus metrics. */
    READER,
    /** Everything a reader may, and creates, deletes and reinstates: every POST, PUT and DELETE under /api. */
    OPERATOR;

    /** {@return Spring Security's authorities for this role: an operator is a reader as well} */
    public List<GrantedAuthority> authorities() {
        return this == OPERATOR
                ? List.of(new SimpleGrantedAuthority("ROLE_OPERATOR"), new SimpleGrantedAuthority("ROLE_READER"))
                : List.of(new SimpleGrantedAuthority("ROLE_READER"));
    }

    /**
     * The role of a name as written in the credentials file or a property.
     *
     * @param text {@code READER} or {@code OPERATOR}, in any case
     * @return the role
     * @throws IllegalArgumentException naming the two roles
     */
    public static Role parse(String text) {
        for (Role r : values()) {
            if (r.name().equalsIgnoreCase(text.trim())) {
                return r;
            }
        }
        throw new IllegalArgumentException("'" + text + "' is not a role: write READER or OPERATOR");
    }
}

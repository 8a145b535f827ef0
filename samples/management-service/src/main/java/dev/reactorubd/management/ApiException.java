package dev.reactorubd.management;

import org.springframework.http.HttpStatus;

/**
 * An error the API answers with an RFC 9457 problem body ({@link ProblemHandler}): a status, a short title and a
 * detail saying what to send instead. Thrown or signalled by {@link DeviceManager}.
 */
public class ApiException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final HttpStatus status;
    private final String title;
    /** The target policy's rule that refused the request, or null. */
    private String rule;

    public ApiException(HttpStatus status, String title, String detail, Throwable cause) {
        super(detail, cause);
        this.status = status;
        this.title = title;
    }

    public ApiException(HttpStatus status, String title, String detail) {
        this(status, title, detail, null);
    }

    /**
     * Names the target policy's rule that refused the request ({@code rule} in the problem body).
     *
     * @param rule the {@code TargetPolicyException.Rule}'s name
     * @return this
     */
    public ApiException withRule(String rule) {
        this.rule = rule;
        return this;
    }

    /** {@return the target policy's rule that refused the request, or null} */
    public String rule() {
        return rule;
    }

    /** The HTTP status: 400 bad spec, 403 refused by the target policy, 404 no such device, 409 busy, 503 no driver. */
    public HttpStatus status() {
        return status;
    }

    /** The problem's title, e.g. "Bad target spec". */
    public String title() {
        return title;
    }
}

package dev.reactorubd.management;

import java.net.URI;
import org.springframework.http.HttpStatus;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;
import org.springframework.web.reactive.result.method.annotation.ResponseEntityExceptionHandler;

/**
 * Every API error as an RFC 9457 problem body ({@code application/problem+json}): {@link ApiException}s with their
 * status, title and detail; Spring's own (a body that is not JSON, a path id that is not a number) through
 * {@link ResponseEntityExceptionHandler}; anything else as 500 with its message.
 */
@RestControllerAdvice
public class ProblemHandler extends ResponseEntityExceptionHandler {
    private static final URI TYPE = URI.create("https://github.com/reactor-ubd/reactor-ubd#management-service");

    @ExceptionHandler(ApiException.class)
    public ResponseEntity<ProblemDetail> api(ApiException e) {
        ProblemDetail p = ProblemDetail.forStatusAndDetail(e.status(), e.getMessage());
        p.setTitle(e.title());
        p.setType(TYPE);
        if (e.rule() != null) {
            p.setProperty("rule", e.rule());
        }
        return ResponseEntity.status(e.status()).body(p);
    }

    @ExceptionHandler(NumberFormatException.class)
    public ResponseEntity<ProblemDetail> notANumber(NumberFormatException e) {
        ProblemDetail p = ProblemDetail.forStatusAndDetail(
                HttpStatus.BAD_REQUEST, "a device id is a number, as in " + "/api/devices/0: " + e.getMessage());
        p.setTitle("Bad device id");
        return ResponseEntity.badRequest().body(p);
    }
}

package dev.reactorubd.testing;

import java.lang.reflect.AnnotatedElement;
import java.util.Optional;
import net.jqwik.api.lifecycle.AfterContainerHook;
import net.jqwik.api.lifecycle.ContainerLifecycleContext;
import net.jqwik.api.lifecycle.PropagationMode;

/**
 * {@link LeakCheckExtension} for jqwik's engine: fails a property test class when Netty reports a leak once it has
 * run. Registered globally through jqwik's ServiceLoader ({@code META-INF/services/net.jqwik.api.lifecycle.LifecycleHook}).
 */
public final class LeakCheckHook implements AfterContainerHook {
    @Override
    public PropagationMode propagateTo() {
        return PropagationMode.ALL_DESCENDANTS;
    }

    @Override
    public boolean appliesTo(Optional<AnnotatedElement> element) {
        return element.map(e -> e instanceof Class<?>).orElse(false);
    }

    @Override
    public void afterContainer(ContainerLifecycleContext context) {
        LeakDetection.install().assertNoLeaks(context.optionalContainerClass().map(Class::getName)
                .orElse(context.label()));
    }
}

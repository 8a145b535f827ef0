package dev.reactorubd.targets.compose;

import dev.reactorubd.io.UbdQueue;
import dev.reactorubd.server.BlockBackend;

/** Any backend made composable ({@link Backends#from}): passes everything through unchanged. */
final class FromBackend extends DecoratorBackend {
    FromBackend(BlockBackend delegate) {
        super(delegate, null);
    }

    @Override
    DecoratorBackend bound(BlockBackend boundDelegate, UbdQueue queue) {
        return boundDelegate == delegate ? this : new FromBackend(boundDelegate);
    }

    @Override
    public String toString() {
        return delegate.toString();
    }
}

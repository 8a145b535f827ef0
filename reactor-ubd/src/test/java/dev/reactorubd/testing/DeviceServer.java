package dev.reactorubd.testing;

import dev.reactorubd.server.UbdServer;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * One {@link UbdServer} for a device test class: started from a clean slate before the class ({@link
 * Devices#startServer()}), checked after each test once the test's own clean-up ran ({@link Devices#assertClean}), and
 * closed after the class.
 *
 * <pre>{@code
 * @RegisterExtension
 * static final DeviceServer SERVER = new DeviceServer();
 * }</pre>
 */
public final class DeviceServer implements BeforeAllCallback, AfterEachCallback, AfterAllCallback {
    private UbdServer server;

    /** The class's server (started before its first test). */
    public UbdServer get() {
        return server;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        server = Devices.startServer();
    }

    @Override
    public void afterEach(ExtensionContext context) {
        Devices.assertClean(server);
    }

    @Override
    public void afterAll(ExtensionContext context) {
        server.close();
    }
}

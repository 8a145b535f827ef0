package dev.reactorubd.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.reactorubd.ctrl.UbdControl;
import dev.reactorubd.testing.BlockingCallRecorder;
import dev.reactorubd.testing.DeviceTest;
import dev.reactorubd.testing.Devices;
import dev.reactorubd.testing.NewestKernelOnly;
import dev.reactorubd.testing.Vm;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.Alert;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.PageLoadStrategy;
import org.openqa.selenium.StaleElementReferenceException;
import org.openqa.selenium.TimeoutException;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.ExpectedConditions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The management page in a real headless browser (Debian's chromium through chromedriver), against the service
 * serving real devices, signed in through the login page (a wrong password refused first): a device created through
 * the form, listed with charts that update while fio runs, an error shown for a bad spec, a file outside the target
 * policy refused with its rule, the device deleted through the page (every POST and DELETE with the CSRF token).
 * Saves a screenshot {@code management-page.png} to the run's report directory (target/vm-reports/KERNEL, shared with
 * the host by scripts/test-all).
 *
 * <p>On the newest kernel only: the page is the subject; ManagementServiceDeviceTest drives the service's devices on
 * every kernel.
 */
@DeviceTest
@NewestKernelOnly
class ManagementPageDeviceTest {
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static ServiceClient service;
    private static WebDriver browser;
    private static Path profile;

    @BeforeAll
    static void start() throws Exception {
        try (UbdControl control = UbdControl.open()) {
            Devices.removeLeftovers(control);
        }
        service = new ServiceClient(
                "ubd.share-event-loops=true", "ubd.event-loops=2", MirrorApiDeviceTest.FILE_DIRECTORIES);
        profile = Files.createTempDirectory("chromium-profile");
        ChromeOptions options = new ChromeOptions();
        options.setBinary("/usr/bin/chromium");
        // The emulated VM renders slowly: don't wait for the load event in get(); the test waits for what it needs.
        options.setPageLoadStrategy(PageLoadStrategy.EAGER);
        options.addArguments(
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--user-data-dir=" + profile,
                "--window-size=1200,860");
        System.setProperty("webdriver.chrome.driver", "/usr/bin/chromedriver");
        ChromeDriverService driverService = new ChromeDriverService.Builder()
                .usingDriverExecutable(new File("/usr/bin/chromedriver"))
                .usingAnyFreePort()
                .withTimeout(WAIT)
                .build();
        browser = new ChromeDriver(driverService, options);
        browser.manage().timeouts().pageLoadTimeout(WAIT).scriptTimeout(WAIT);
        signIn();
    }

    /**
     * Signs in as the page's user does: the page sends the browser to the login page, a wrong password is refused
     * there, the right one leads back to the page (its session cookie kept by the browser for the tests).
     */
    private static void signIn() {
        load(service.base + "/");
        waiting()
                .until(b -> b.getCurrentUrl().endsWith("/login")
                        && !b.findElements(By.id("login-form")).isEmpty());
        submitLogin(ServiceClient.USER, "not the password");
        waiting()
                .until(b -> b.getCurrentUrl().endsWith("/login?error")
                        && !b.findElements(By.id("login-error")).isEmpty());
        submitLogin(ServiceClient.USER, ServiceClient.PASSWORD);
        waiting()
                .until(b -> b.getCurrentUrl().equals(service.base + "/")
                        && b.findElement(By.id("stream-state")).getText().equals("live"));
        // The page's scripts run under its CSP (no inline script) and read the API with the session alone.
        assertTrue(js("return document.cookie").contains("XSRF-TOKEN="), "the CSRF cookie for the page's scripts");
    }

    private static void submitLogin(String user, String password) {
        WebElement name = browser.findElement(By.id("username"));
        name.clear();
        name.sendKeys(user);
        WebElement pass = browser.findElement(By.id("password"));
        pass.clear();
        pass.sendKeys(password);
        browser.findElement(By.id("sign-in")).click();
    }

    private static void load(String url) {
        try {
            browser.get(url);
        } catch (TimeoutException e) {
            // The renderer was slow to answer (software-emulated CPU); the waits after it are bounded anyway.
            System.out.println(
                    "page load: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }

    @AfterAll
    static void stop() {
        try {
            if (browser != null) {
                browser.quit();
            }
        } finally {
            if (service != null) {
                service.close();
            }
        }
        assertEquals(List.of(), BlockingCallRecorder.callsOn("ubd-"), "blocking calls on ubd threads");
    }

    private static WebDriverWait waiting() {
        return (WebDriverWait) new WebDriverWait(browser, WAIT, Duration.ofMillis(500))
                .ignoring(TimeoutException.class)
                .ignoring(StaleElementReferenceException.class);
    }

    private static String js(String script, Object... args) {
        return String.valueOf(((JavascriptExecutor) browser).executeScript(script, args));
    }

    @Test
    void createWatchFailAndDeleteThroughThePage() throws Exception {
        load(service.base + "/");
        waiting().until(b -> b.findElement(By.id("stream-state")).getText().equals("live"));

        WebElement target = browser.findElement(By.id("target"));
        target.clear();
        target.sendKeys("memory:32M");
        WebElement queues = browser.findElement(By.id("queues"));
        queues.clear();
        queues.sendKeys("2");
        browser.findElement(By.id("create")).click();
        WebElement card = waiting()
                .until(b -> b.findElements(By.cssSelector(".device")).stream()
                        .findFirst()
                        .orElse(null));
        String id = card.getAttribute("data-id");
        String path = "/dev/ublkb" + id;
        assertTrue(
                card.findElement(By.tagName("h3")).getText().startsWith(path + " — memory:33554432"), card.getText());
        assertTrue(Files.exists(Path.of(path)), path + " exists");

        // fio for a while: the numbers and the IOPS chart follow it.
        String chartBefore =
                js("return arguments[0].toDataURL()", card.findElement(By.cssSelector("canvas.iops-chart")));
        CompletableFuture<Vm.Result> fio = CompletableFuture.supplyAsync(() -> Vm.sh(
                300,
                "fio --name=page"
                        + " --filename=" + path + " --rw=randrw --bs=4k --direct=1 --ioengine=io_uring --iodepth=8"
                        + " --time_based --runtime=40 --size=32M"));
        waiting()
                .until(b -> Long.parseLong(card.getAttribute("data-writes")) > 0
                        && card.findElement(By.cssSelector(".numbers"))
                                .getText()
                                .matches(".*write [1-9][0-9]* IOPS.*"));
        int samples = Integer.parseInt(card.getAttribute("data-samples"));
        waiting().until(b -> Integer.parseInt(card.getAttribute("data-samples")) >= samples + 4);
        String chartAfter =
                js("return arguments[0].toDataURL()", card.findElement(By.cssSelector("canvas.iops-chart")));
        assertNotEquals(chartBefore, chartAfter, "the IOPS chart was redrawn with data");

        // A bad spec: the problem's detail is shown.
        target.clear();
        target.sendKeys("bogus:1");
        browser.findElement(By.id("create")).click();
        WebElement error = waiting().until(b -> {
            WebElement e = b.findElement(By.id("error"));
            return e.isDisplayed() ? e : null;
        });
        assertTrue(error.getText().contains("400 Bad target spec"), error.getText());
        assertTrue(error.getText().contains("'bogus:1' is not a target spec: write one of null:SIZE"), error.getText());
        assertEquals(1, browser.findElements(By.cssSelector(".device")).size(), "no device from a bad spec");

        // A file outside the policy's directories: refused by name, the rule shown.
        target.clear();
        target.sendKeys("file:/etc/passwd");
        browser.findElement(By.id("create")).click();
        waiting().until(b -> b.findElement(By.id("error")).getText().contains("[policy rule FILE_DIRECTORY]"));
        assertTrue(
                browser.findElement(By.id("error")).getText().startsWith("403 Refused by the target policy"),
                browser.findElement(By.id("error")).getText());
        target.clear();
        target.sendKeys("bogus:1");
        browser.findElement(By.id("create")).click();
        waiting().until(b -> b.findElement(By.id("error")).getText().contains("'bogus:1' is not a target spec"));

        Path shot = reports().resolve("management-page.png");
        Files.createDirectories(shot.getParent());
        Files.copy(
                ((ChromeDriver) browser).getScreenshotAs(OutputType.FILE).toPath(),
                shot,
                StandardCopyOption.REPLACE_EXISTING);
        System.out.println("screenshot: " + shot);
        Vm.Result fioResult = fio.get(300, TimeUnit.SECONDS);
        assertEquals(0, fioResult.exitCode(), fioResult.output());

        card.findElement(By.cssSelector("button.delete")).click();
        waiting().until(b -> b.findElements(By.cssSelector(".device")).isEmpty());
        assertTrue(browser.findElement(By.id("empty")).isDisplayed());
        assertFalse(Files.exists(Path.of(path)), path + " is gone");
        assertFalse(Vm.deviceExists(Integer.parseInt(id)), "device " + id + " deleted");
    }

    /**
     * Clicks the element {@code css} names, if the page has it now, in one step of the page's own thread: the cards are
     * redrawn every 2 s, and under the VM's emulated CPU a find and a click from here always had a redraw between them
     * (StaleElementReferenceException for 120 s, on 6.18).
     */
    private static boolean clickNow(WebDriver b, String css) {
        return Boolean.TRUE.equals(((JavascriptExecutor) b)
                .executeScript(
                        "const e = document.querySelector(arguments[0]); if (e) { e.click(); } return e !== null;",
                        css));
    }

    /** As {@link #clickNow}, for a button whose handler opens a dialog: the click runs once the script has returned. */
    private static boolean clickSoon(WebDriver b, String css) {
        return Boolean.TRUE.equals(((JavascriptExecutor) b)
                .executeScript(
                        "const e = document.querySelector(arguments[0]);"
                                + " if (e) { setTimeout(() => e.click(), 0); } return e !== null;",
                        css));
    }

    @Test
    void aFailedMirrorReplicaIsShownAndReinstatedThroughThePage() throws Exception {
        MirrorApiDeviceTest.createReplicas();
        try {
            ServiceClient.Response created =
                    service.post("/api/devices", "{\"target\":\"" + MirrorApiDeviceTest.SPEC + "\"}");
            assertEquals(201, created.status(), created.body());
            String id = ServiceClient.field(created.body(), "id");
            String path = ServiceClient.field(created.body(), "path");
            load(service.base + "/");
            // The page redraws its cards every 2 s: elements are looked up again each time, never kept.
            String card = "#device-" + id + " ";
            waiting().until(b -> b.findElement(By.id("device-" + id)));
            // The new mirror's first copy ends; both rows say IN_SYNC and no row has a button.
            waiting()
                    .until(b -> b.findElements(By.cssSelector(card + "tr.replica[data-state=IN_SYNC]"))
                                    .size()
                            == 2);
            waiting()
                    .until(b -> b.findElement(By.cssSelector(card + ".mirror-summary"))
                            .getText()
                            .contains("every replica in sync"));
            assertTrue(
                    browser.findElements(By.cssSelector(card + "button.reinstate"))
                            .isEmpty(),
                    "no Reinstate while in sync");

            MirrorApiDeviceTest.failReplica0(path);
            String reinstate = card + "tr.replica[data-slot='0'][data-state=FAILED] button.reinstate";
            waiting().until(b -> b.findElement(By.cssSelector(reinstate)));
            waiting()
                    .until(b -> b.findElement(By.cssSelector(card + ".mirror-summary"))
                            .getText()
                            .contains("DEGRADED"));
            MirrorApiDeviceTest.repairReplica0();
            waiting().until(b -> clickNow(b, reinstate));
            waiting()
                    .until(b -> b.findElements(By.cssSelector(card + "tr.replica[data-state=IN_SYNC]"))
                                    .size()
                            == 2);
            assertTrue(
                    browser.findElements(By.cssSelector(card + "button.reinstate"))
                            .isEmpty(),
                    "no Reinstate once in sync");
            assertTrue(browser.findElement(By.id("error")).getAttribute("hidden") != null, "no error shown");
            ServiceClient.Response health = service.get("/actuator/health");
            assertEquals(200, health.status(), health.body());
            assertEquals("UP", ServiceClient.healthStatus(health.body()), health.body());

            // Replica 0 fails again; this time it is replaced, through the page, by a blank file.
            String replacement = "file:/run/ubd-mgmt-big/r2.img";
            Vm.sh(60, "truncate -s 8M /run/ubd-mgmt-big/r2.img").requireSuccess();
            // Where replica 0 has nothing allocated yet (the reinstate allocated what the first failure wrote).
            MirrorApiDeviceTest.failReplica0(path, 80);
            String replace = card + "tr.replica[data-slot='0'][data-state=FAILED] button.replace";
            waiting().until(b -> clickSoon(b, replace));
            Alert prompt = waiting().until(ExpectedConditions.alertIsPresent());
            prompt.sendKeys(replacement);
            prompt.accept();
            waiting()
                    .until(b -> b.findElements(By.cssSelector(card + "tr.replica[data-state=IN_SYNC]"))
                                    .size()
                            == 2);
            waiting()
                    .until(b -> b.findElement(By.cssSelector(card + "tr.replica[data-slot='0']"))
                            .getText()
                            .contains(replacement));
            assertTrue(browser.findElement(By.id("error")).getAttribute("hidden") != null, "no error shown");
            long dataOffset = 1 << 20;
            Vm.sh(60, "cmp -i " + dataOffset + " /run/ubd-mgmt-big/r2.img /run/ubd-mgmt-big/r1.img")
                    .requireSuccess();
        } finally {
            service.delete("/api/devices/"
                    + ServiceClient.field(service.get("/api/devices").body(), "id"));
            waiting().until(b -> b.findElements(By.cssSelector(".device")).isEmpty());
            MirrorApiDeviceTest.removeReplicas();
        }
    }

    /**
     * Where the screenshot goes: the run's report directory in the VM ({@code ubd.class.reports}, set by
     * scripts/vm/run-device-tests to a directory shared with the host; the rest of the guest's file system is thrown
     * away), else target/vm-reports of the checkout.
     */
    private static Path reports() throws Exception {
        String shared = System.getProperty("ubd.class.reports");
        if (shared != null) {
            return Path.of(shared);
        }
        Path classes = Path.of(ManagementPageDeviceTest.class
                .getProtectionDomain()
                .getCodeSource()
                .getLocation()
                .toURI());
        return classes.getParent().getParent().getParent().getParent().resolve("target/vm-reports");
    }
}

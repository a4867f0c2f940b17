// Headless Chromium (Debian's) through WordPress under Isola: log in, write a post in the
// block editor, publish it, view it. Screenshots go to the artifacts folder; any asset that
// fails to load (4xx/5xx, network error, wrong MIME type) or any console error fails the run.
//
// Usage: node browser.mjs BASE_URL USER PASSWORD ARTIFACTS_DIR
import { launch } from "./chromium.mjs";

const [base, user, password, artifacts] = process.argv.slice(2);
const problems = [];

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const watch = (p) => {
    p.on("console", (msg) => {
      if (msg.type() !== "error") return;
      // Resources of other origins (avatars, feeds) cannot load on an offline machine;
      // only this site's own assets count.
      const where = msg.location()?.url || "";
      if (msg.text().startsWith("Failed to load resource") && !where.startsWith(base)) return;
      problems.push(`console error on ${p.url()}: ${msg.text()} (${where})`);
    });
    p.on("pageerror", (err) => problems.push(`page error on ${p.url()}: ${err.message}`));
    p.on("requestfailed", (req) => {
      // ERR_ABORTED: the page navigated away before the request finished.
      if (req.url().startsWith(base) && req.failure()?.errorText !== "net::ERR_ABORTED") {
        problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`);
      }
    });
    p.on("response", (res) => {
      const type = res.request().resourceType();
      if (res.url().startsWith(base) && res.status() >= 400 &&
          ["script", "stylesheet", "image", "font", "document"].includes(type)) {
        problems.push(`${type} ${res.url()} answered ${res.status()}`);
      }
    });
  };
  watch(page);

  await page.goto(`${base}/wp-login.php`);
  await page.fill("#user_login", user);
  await page.fill("#user_pass", password);
  await Promise.all([page.waitForNavigation(), page.click("#wp-submit")]);
  await page.waitForSelector("#wpadminbar");
  await page.screenshot({ path: `${artifacts}/wordpress-dashboard.png`, fullPage: true });

  await page.goto(`${base}/wp-admin/post-new.php`);
  // The first visit shows a welcome guide.
  const guide = page.locator(".edit-post-welcome-guide button[aria-label='Close'], .components-modal__header button");
  if (await guide.first().isVisible({ timeout: 5000 }).catch(() => false)) {
    await guide.first().click();
  }
  const iframe = await page.$("iframe[name='editor-canvas']");
  const canvas = iframe ? page.frameLocator("iframe[name='editor-canvas']") : page;
  const title = canvas.locator(".editor-post-title__input, .wp-block-post-title").first();
  await title.click();
  await page.keyboard.type("Written in Chromium");
  await page.keyboard.press("Enter");
  await page.keyboard.type("This post was written in a real browser, served by Isola.");
  await page.click(".editor-post-publish-panel__toggle");
  await page.click(".editor-post-publish-panel .editor-post-publish-button");
  await page.waitForSelector(".post-publish-panel__postpublish-header, .components-snackbar", { timeout: 30000 });
  await page.screenshot({ path: `${artifacts}/wordpress-editor.png`, fullPage: true });

  await page.goto(`${base}/written-in-chromium/`);
  const text = await page.textContent("body");
  if (!text.includes("served by Isola")) problems.push("the published post does not show its text");
  await page.screenshot({ path: `${artifacts}/wordpress-post.png`, fullPage: true });
  await page.goto(`${base}/hello-from-isola/`);
  const img = await page.$("img[alt='red']");
  if (!img) problems.push("the post with the uploaded image has no image");
  else {
    const ok = await img.evaluate((i) => i.complete && i.naturalWidth === 64);
    if (!ok) problems.push("the uploaded image did not render");
  }
  await page.screenshot({ path: `${artifacts}/wordpress-image-post.png`, fullPage: true });
} catch (e) {
  problems.push(`browser flow: ${e.message}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("browser: ok");

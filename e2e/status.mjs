// Headless Chromium (Debian's) on Isola's live status page while the server is under load:
// the plots must redraw (a line's points change between two reads ~2 s apart), the
// freshness text must advance, a hostile request path must show as text in a busy row and
// inject nothing, and nothing may log a console error, a page error or a
// Content-Security-Policy violation. Leaves status.png in the artifacts folder.
//
// Usage: node status.mjs ADMIN_URL ARTIFACTS_DIR
import { launch } from "./chromium.mjs";

const [admin, artifacts] = process.argv.slice(2);
const problems = [];

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    // A CSP violation is reported as a console error too; anything else of type error
    // (a failed fetch, a script error) is as bad.
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`));
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`${res.url()} answered ${res.status()}`);
  });
  // The page reports violations as DOM events as well, in case the console is quiet.
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const resp = await page.goto(`${admin}/status`);
  const csp = resp.headers()["content-security-policy"] || "";
  if (!csp.includes("script-src 'self'")) problems.push(`no strict policy: ${csp}`);

  // The plots appear once the history holds two samples.
  const line = "#plots polyline[data-series='2xx']";
  await page.waitForSelector(line, { timeout: 15000 });
  const read = () => page.evaluate(() => ({
    // Every line of every plot: under load at least one of them moves.
    points: [...document.querySelectorAll("#plots polyline")].map((p) => p.getAttribute("points")),
    ok: document.querySelector("#plots polyline[data-series='2xx']").getAttribute("points"),
    fresh: document.getElementById("fresh").textContent,
    plots: document.querySelectorAll("#plots figure").length,
  }));
  const a = await read();
  await page.waitForTimeout(2200);
  const b = await read();
  if (a.ok === b.ok) problems.push("the 2xx line did not change in 2 s under load");
  if (a.points.join("|") === b.points.join("|")) problems.push("no plot changed in 2 s");
  if (!/^updated /.test(b.fresh)) problems.push(`freshness text: ${JSON.stringify(b.fresh)}`);
  if (a.fresh === b.fresh && a.points.join("|") === b.points.join("|")) {
    problems.push("the page did not update");
  }
  if (b.plots < 8) problems.push(`only ${b.plots} plots`);
  // The 2xx series must have seen load: its label shows a non-zero rate.
  const label = await page.evaluate(() => [...document.querySelectorAll("#plots text")]
    .map((t) => t.textContent).find((t) => t.startsWith("2xx: ")));
  if (!label || label === "2xx: 0/s") problems.push(`2xx label shows no load: ${label}`);
  // Busy rows show the client address.
  const head = await page.evaluate(() => [...document.querySelectorAll("#sites th")].map((t) => t.textContent));
  if (!head.includes("client")) problems.push(`no client column: ${head.join(", ")}`);
  // A busy row shows the hostile path the loader sends as text; it never becomes markup.
  const shown = await page.waitForFunction(
    () => [...document.querySelectorAll("#sites td")].some((td) => td.textContent.includes('"onmouseover="alert(1)')),
    null, { timeout: 10000 }).then(() => true, () => false);
  if (!shown) problems.push("the hostile request never showed in a busy row");
  const injected = await page.evaluate(() => document.querySelectorAll("[onmouseover], #sites img, #sites script").length);
  if (injected) problems.push(`${injected} element(s) injected by a request path`);
  const csps = await page.evaluate(() => window.__csp);
  for (const v of csps) problems.push(`CSP violation: ${v}`);
  await page.screenshot({ path: `${artifacts}/status.png`, fullPage: true });
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("status page: live, no console error");

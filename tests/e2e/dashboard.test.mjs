// The dashboard (/dashboard/) in a real browser: headless Chromium from the system's
// packages (/usr/bin/chromium, or $CHROMIUM; `bash scripts/setup.sh --browser` installs
// Debian's), driven by playwright-core, against the shared `wrangler dev` Worker. It
// signs in with the token, lists and opens instances, follows one live over SSE, sends an
// event, creates an instance, pauses and resumes an order from the page, and checks that
// params, step names and errors holding markup stay text. Screenshots go to
// tests/.tmp/screenshots/, and to docs/screenshots/ with UPDATE_SCREENSHOTS=1.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, TOKEN } from "./harness.mjs";
import { root } from "./devserver.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = [path.join(root, "tests/.tmp/screenshots"), ...(process.env.UPDATE_SCREENSHOTS === "1" ? [path.join(root, "docs/screenshots")] : [])];
const POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const UI_TIMEOUT = 30_000;

let browser;
let base;
const seen = { urls: [], console: [], errors: [], violations: [] };

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run \`bash scripts/setup.sh --browser\` (apt-get install chromium) or set CHROMIUM`);
  ({ base } = await worker());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives each launch a fresh profile (its own --user-data-dir). Without the
    // background-networking flags Chromium dials out at start, which this machine refuses.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
});

/** A page in a fresh context (no storage), recording what the tests check after. */
async function open(colorScheme = "light") {
  const context = await browser.newContext({ colorScheme, viewport: { width: 1180, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on("request", (r) => seen.urls.push(r.url()));
  page.on("console", (m) => seen.console.push(m.text()));
  page.on("pageerror", (e) => seen.errors.push(e.message));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__violations = (window.__violations ?? 0) + 1;
    });
  });
  return page;
}

async function signIn(page) {
  await page.goto(`${base}/dashboard`);
  await page.getByLabel("API token").fill(TOKEN);
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByRole("heading", { name: "Workflows", level: 2 }).waitFor();
}

/** Clicks a button that asks for confirmation, then confirms in the dialog. */
async function confirmed(page, button, confirmLabel) {
  await page.locator(button).click();
  const dialog = page.locator("dialog#confirm");
  await dialog.waitFor({ state: "visible" });
  await dialog.getByRole("button", { name: confirmLabel }).click();
  await dialog.waitFor({ state: "hidden" });
}

async function shoot(page, name, fullPage = false) {
  await page.evaluate(() => document.activeElement?.blur());
  for (const dir of SHOTS) {
    fs.mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage });
  }
}

const statusOf = (page) => page.locator("#instance-status .badge").textContent();

describe("dashboard", () => {
  it("reads GET /workflows/{name} (schemas, counts by status) and lists instances filtered by status", async () => {
    const waiting = uniqueId("dash-filter-wait");
    const done = uniqueId("dash-filter-done");
    for (const id of [waiting, done]) assert.equal((await createInstance("approval", { id, params: { userId: "u-f" } })).status, 201);
    await waitFor("approval", done, (b) => b.status !== "queued");
    assert.equal((await api("POST", `/workflows/approval/instances/${done}/terminate`)).status, 200);

    const described = await api("GET", "/workflows/approval");
    assert.equal(described.status, 200, JSON.stringify(described.body));
    assert.equal(described.body.name, "approval");
    assert.deepEqual(described.body.params.required, ["userId"]);
    assert.deepEqual(described.body.events.map((e) => [e.type, e.schema.required]), [["approval-response", ["approved"]]]);
    const { total, counted, byStatus } = described.body.instances;
    assert.ok(total >= 2 && counted >= 2 && counted <= 100, JSON.stringify(described.body.instances));
    assert.equal(Object.values(byStatus).reduce((a, b) => a + b, 0), counted);
    assert.ok(byStatus.terminated >= 1, JSON.stringify(byStatus));
    assert.equal((await api("GET", "/workflows/step-tour")).body.params, null, "no schema given: null");
    assert.equal((await api("GET", "/workflows/nope")).status, 404);

    const ids = async (status) => (await api("GET", `/workflows/approval/instances?status=${status}&limit=100`)).body.instances;
    const terminated = await ids("terminated");
    assert.ok(terminated.some((i) => i.id === done) && terminated.every((i) => i.status === "terminated"), JSON.stringify(terminated));
    assert.ok(!terminated.some((i) => i.id === waiting));
    const live = await ids("running,waiting,queued");
    assert.ok(live.some((i) => i.id === waiting) && !live.some((i) => i.id === done), JSON.stringify(live));
    const bad = await api("GET", "/workflows/approval/instances?status=finished");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_query");
    // A page filled up before the rows read end: its cursor goes on from the last one taken.
    const first = await api("GET", "/workflows/approval/instances?status=running,waiting,queued,terminated&limit=1");
    assert.equal(first.body.instances.length, 1);
    assert.ok(first.body.cursor, "more to read");
    const next = await api("GET", `/workflows/approval/instances?status=running,waiting,queued,terminated&limit=1&cursor=${first.body.cursor}`);
    assert.notEqual(next.body.instances[0]?.id, first.body.instances[0].id);
    await api("POST", `/workflows/approval/instances/${waiting}/terminate`);
  });

  it("is served as static assets with a strict policy, and shows only the token prompt without a token", async () => {
    const res = await fetch(`${base}/dashboard/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-security-policy"), POLICY);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    const js = await fetch(`${base}/dashboard/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type"), /javascript/);
    // The API's paths still reach the Worker.
    assert.equal((await fetch(`${base}/health`)).status, 200);
    assert.equal((await fetch(`${base}/workflows`)).status, 401);

    const page = await open();
    const before = seen.urls.length;
    await page.goto(`${base}/dashboard`);
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.locator("#login").isVisible(), true);
    assert.equal(await page.locator("#view").isVisible(), false, "nothing but the prompt");
    assert.equal(await page.locator("#forget").isVisible(), false);
    assert.deepEqual(
      seen.urls.slice(before).filter((u) => new URL(u).pathname.startsWith("/workflows")),
      [],
      "no API call without a token",
    );
    // A wrong token is refused and not kept.
    await page.getByLabel("API token").fill("not-the-token");
    await page.getByRole("button", { name: "Use token" }).click();
    await page.locator("#login-error").filter({ hasText: "refused" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.context().close();
  });

  it("lists a created approval instance, follows its steps live, sends its approval event from the page and sees it complete", async () => {
    const id = uniqueId("dash-approval");
    const created = await createInstance("approval", { id, params: { userId: "u-dash", timeout: "10 minutes" } });
    assert.equal(created.status, 201, JSON.stringify(created.body));

    const page = await open();
    await signIn(page);
    // The workflows with their counts.
    const row = page.locator('tr[data-workflow="approval"]');
    await row.locator(".badge").first().waitFor();
    await page.locator('tr[data-workflow="order-processing"] .badges').waitFor();
    await shoot(page, "dashboard-workflows-light");
    // Search by id, over every workflow.
    await page.getByLabel("Find an instance by id").fill(id);
    await page.getByRole("button", { name: "Search" }).click();
    await page.locator("#search-results").getByRole("link", { name: `approval / ${id}` }).waitFor();
    await row.getByRole("link", { name: "approval" }).click();
    // The instance, listed newest first.
    const link = page.locator("#instances").getByRole("link", { name: id });
    await link.waitFor();
    assert.equal(await page.locator("#instances tbody tr").first().locator("a").textContent(), id, "newest first");
    await shoot(page, "dashboard-list-light");
    await page.emulateMedia({ colorScheme: "dark" });
    await shoot(page, "dashboard-list-dark");
    await page.emulateMedia({ colorScheme: "light" });

    await link.click();
    await page.locator("#instance-params").getByText('"u-dash"').waitFor();
    const timeline = page.locator("#timeline");
    await timeline.locator('li[data-step="create-approval"].s-complete').waitFor();
    await timeline.locator('li[data-step="wait-for-approval"][data-kind="waitForEvent"]').waitFor();
    await page.locator("#live.on").waitFor();
    await page.evaluate(() => (window.__samePage = true));

    // The event's form is built from its schema: a checkbox for `approved`, a field for `by`.
    await page.getByLabel("approved").check();
    await page.getByLabel("by (optional)").fill("dashboard");
    await confirmed(page, "#send-event", "Send");
    await page.locator("#action-done").filter({ hasText: "approval-response" }).waitFor();

    // Live: the decision's step and the end arrive over the stream, without a reload.
    await timeline.locator('li[data-step="process-approval"].s-complete').waitFor();
    await page.locator("#instance-status .s-complete").waitFor();
    await page.locator("#instance-output").getByText('"approved"').waitFor();
    await page.locator("#live").filter({ hasText: "ended" }).waitFor();
    assert.equal(await page.evaluate(() => window.__samePage), true, "followed live, never reloaded");
    assert.equal((await getInstance("approval", id)).body.status, "complete");
    await page.evaluate(() => scrollTo(0, 0));
    await shoot(page, "dashboard-instance-light", true);
    await page.emulateMedia({ colorScheme: "dark" });
    await shoot(page, "dashboard-instance-dark", true);
    await page.context().close();
  });

  it("creates an instance with params checked against the schema first", async () => {
    const page = await open();
    await signIn(page);
    await page.goto(`${base}/dashboard/#/workflows/approval`);
    await page.getByText("Create an instance").click();
    const id = uniqueId("dash-created");
    await page.getByLabel("Id (optional: a UUID otherwise)").fill(id);
    // A required field left empty never reaches the Worker.
    await page.getByLabel("userId (required)").fill("");
    const posts = () => seen.urls.filter((u) => u.endsWith("/workflows/approval/instances")).length;
    const before = posts();
    await page.getByRole("button", { name: "Create…" }).click();
    await page.locator("#create [role=alert]").filter({ hasText: "userId: required" }).waitFor();
    assert.equal(await page.locator("dialog#confirm").isVisible(), false, "nothing to confirm");
    assert.equal(posts(), before, "nothing sent");

    await page.getByLabel("userId (required)").fill("u-created");
    await confirmed(page, "#create button[type=submit]", "Create");
    await page.locator("h2").filter({ hasText: id }).waitFor();
    await page.locator('#timeline li[data-step="wait-for-approval"]').waitFor();
    const status = await getInstance("approval", id);
    assert.equal(status.status, 200, JSON.stringify(status.body));
    await api("POST", `/workflows/approval/instances/${id}/terminate`);
    await page.context().close();
  });

  it("pauses and resumes an order from the page", async () => {
    const id = uniqueId("dash-order");
    const params = { orderId: id, userId: `user-${id}`, items: [{ productId: `${id}-a`, quantity: 1 }], fulfillmentDelay: "1 minute" };
    assert.equal((await createInstance("order-processing", { id, params })).status, 201);

    const page = await open();
    await signIn(page);
    await page.goto(`${base}/dashboard/#/workflows/order-processing/instances/${id}`);
    // Sleeping before fulfilment: the sleep is on the timeline, still running.
    await page.locator('#timeline li[data-step="wait-before-fulfillment"][data-kind="sleep"].s-running').waitFor();

    await confirmed(page, "#pause", "Pause");
    await page.locator("#instance-status .s-paused").waitFor();
    assert.equal((await waitFor("order-processing", id, (b) => b.status === "paused")).status, "paused");
    assert.equal(await page.locator("#resume").isEnabled(), true);
    assert.equal(await page.locator("#pause").isEnabled(), false);

    await confirmed(page, "#resume", "Resume");
    await page.locator("#action-done").filter({ hasText: "Resume: done" }).waitFor();
    const resumed = await waitFor("order-processing", id, (b) => b.status !== "paused");
    assert.ok(["running", "waiting", "queued"].includes(resumed.status), resumed.status);
    await page.locator("#instance-status .badge:not(.s-paused)").waitFor();
    await api("POST", `/workflows/order-processing/instances/${id}/terminate`);
    await page.context().close();
  });

  it("shows params, step names and errors holding markup as text: nothing in them runs", async () => {
    const id = uniqueId("dash-xss");
    const script = "<script>window.__xss = 'script'</script>";
    const img = "<img src=x onerror=\"window.__xss = 'img'\">";
    const params = { actions: [{ context: { name: `ctx ${img}` } }, { nonRetryable: { name: `fail ${img}`, message: `boom ${script}${img}` } }] };
    const created = await createInstance("step-tour", { id, params });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitFor("step-tour", id, finished);

    const page = await open();
    await signIn(page);
    await page.goto(`${base}/dashboard/#/workflows/step-tour/instances/${id}`);
    await page.locator("#instance-status .s-errored").waitFor();
    await page.locator("#timeline li.s-errored").waitFor();
    // The markup is on the page as the text it is...
    await page.locator("#instance-error").getByText(script, { exact: false }).waitFor();
    await page.locator("#instance-params").getByText(img.replaceAll('"', '\\"'), { exact: false }).waitFor();
    await page.locator("#timeline .name").filter({ hasText: `fail ${img}` }).waitFor();
    // ...and none of it became an element or ran.
    const found = await page.evaluate(() => ({
      xss: window.__xss ?? null,
      elements: document.querySelectorAll("#view img, #view script").length,
      violations: window.__violations ?? 0,
    }));
    assert.deepEqual(found, { xss: null, elements: 0, violations: 0 });
    await page.context().close();
  });

  it("resumes a dropped event stream with Last-Event-ID: no event twice, none lost", async () => {
    const id = uniqueId("dash-resume");
    const params = { actions: [{ context: { name: "one" } }, { context: { name: "two" } }, { context: { name: "three" } }] };
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");

    const page = await open();
    await signIn(page);
    // The first stream is cut after its fourth event, as a dropped connection would end it.
    const streams = [];
    let cutAfter = null;
    await page.route(`**/workflows/step-tour/instances/${id}/history`, async (route) => {
      streams.push(route.request().headers()["last-event-id"] ?? null);
      if (streams.length > 1) return route.continue();
      const whole = await (await route.fetch()).text();
      const frames = whole.split("\n\n").filter((f) => f.includes("data:"));
      assert.ok(frames.length > 8, whole);
      cutAfter = frames[3].match(/^id: (\d+)$/m)[1];
      await route.fulfill({ status: 200, headers: { "content-type": "text/event-stream" }, body: `${frames.slice(0, 4).join("\n\n")}\n\n` });
    });
    await page.goto(`${base}/dashboard/#/workflows/step-tour/instances/${id}`);
    await page.locator("#live").filter({ hasText: "ended" }).waitFor();
    assert.deepEqual(streams, [null, cutAfter], "reconnected once, from the last event it had");
    for (const name of ["one", "two", "three"]) {
      assert.equal(await page.locator(`#timeline li[data-step="${name}"].s-complete`).count(), 1, name);
    }
    assert.equal(await page.locator("#timeline > li").count(), 3);
    await page.context().close();
  });

  it("never puts the token in a URL, a cookie, localStorage or the console", async () => {
    assert.ok(seen.urls.length > 10, "the pages made requests");
    assert.deepEqual(seen.urls.filter((u) => u.includes(TOKEN)), []);
    assert.deepEqual(seen.console.filter((m) => m.includes(TOKEN)), []);
    assert.deepEqual(seen.errors, [], "no uncaught errors on any page");
    const page = await open();
    await signIn(page);
    const stored = await page.evaluate(() => ({ local: localStorage.length, cookie: document.cookie, session: Object.keys(sessionStorage) }));
    assert.deepEqual(stored, { local: 0, cookie: "", session: ["worker-workflows-dashboard-token"] });
    assert.deepEqual(await page.context().cookies(), []);
    // Forgetting it leaves only the prompt.
    await page.getByRole("button", { name: "Forget token" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.context().close();
  });
});

// The browser tests of the client kit: real headless Chromium (playwright-core), real MSAL.js, the kit served by
// the proxy, against the caddy and emulator that clientkit/browser_test.go starts. It prints one JSON line per
// scenario ({"scenario","ok","ms","error","screenshot"}); browser_test.go turns them into subtests.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const env = process.env;
const BASE = env.E2E_BASE; // the proxy's site, http://localhost:<port>
const IDP = env.E2E_IDP; // the emulator, https://127.0.0.1:<port>
const SHOTS = env.E2E_SCREENSHOTS;
const RUNS = Number(env.E2E_SESSION_RUNS || 20);
const pageQuery = new URLSearchParams({ idp: IDP, tenant: env.E2E_TENANT, client_id: env.E2E_CLIENT_ID, scope: env.E2E_SCOPE });
const dialogShim = readFileSync(new URL("./office-dialog-shim.js", import.meta.url), "utf8");

const browser = await chromium.launch({
  executablePath: env.E2E_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--disable-popup-blocking"],
});

// Control API of the emulator (faults, tokens), over HTTPS trusted through NODE_EXTRA_CA_CERTS.
async function control(method, path, body) {
  const r = await fetch(IDP + "/_emulator/" + path, { method, body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} /_emulator/${path}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}
const fault = (user, f) => control("PUT", "faults/" + user, f);
const clearFaults = () => control("DELETE", "faults");

function assert(cond, msg, detail) {
  if (!cond) throw new Error(msg + (detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 1500)));
}

// A browser context for one user: every window it opens at the emulator is driven as that user would (picker,
// MFA step, consent step), and what was shown is recorded in ctx.prompts.
async function newUserContext(user) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  ctx.user = user;
  ctx.prompts = [];
  ctx.windows = 0;
  await ctx.route("https://appsforoffice.microsoft.com/**", (route) =>
    route.fulfill({ status: 200, contentType: "text/javascript", body: dialogShim }));
  ctx.on("page", (p) => {
    if (p.opener === undefined) return;
    ctx.windows++;
    drive(ctx, p).catch(() => {});
  });
  return ctx;
}

async function drive(ctx, page) {
  while (!page.isClosed()) {
    try {
      await page.waitForLoadState("domcontentloaded", { timeout: 5000 });
      if (!page.url().startsWith(IDP)) { await page.waitForTimeout(50); continue; }
      const step = await page.$("[data-entraemu-step]");
      let button;
      if (step) {
        const kind = await step.getAttribute("data-entraemu-step");
        ctx.prompts.push(kind);
        button = await page.$(kind === "mfa" ? "#approve" : "#accept");
      } else {
        button = await page.$(`form:has(input[name="user"][value="${ctx.user}"]) button`);
        if (button) ctx.prompts.push("picker");
      }
      if (!button) { await page.waitForTimeout(50); continue; }
      await Promise.all([page.waitForNavigation({ timeout: 10000 }).catch(() => {}), button.click()]);
    } catch {
      if (page.isClosed()) return;
      await page.waitForTimeout(50);
    }
  }
}

async function openApp(ctx, path) {
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") console.error("[page] " + m.text()); });
  await page.goto(BASE + path + "?" + pageQuery);
  await page.waitForFunction(() => window.e2eReady === true, null, { timeout: 15000 });
  return page;
}

const call = (page, which, path, opts) => page.evaluate(([w, p, o]) => window.e2e.call(w, p, o), [which, path, opts || {}]);

let failures = 0;
async function scenario(ctx, name, fn) {
  const t0 = Date.now();
  ctx.prompts.length = 0;
  try {
    await fn();
    console.log(JSON.stringify({ scenario: name, ok: true, ms: Date.now() - t0 }));
  } catch (e) {
    failures++;
    let screenshot;
    try {
      mkdirSync(SHOTS, { recursive: true });
      const pages = ctx.pages();
      for (let i = 0; i < pages.length; i++) {
        const f = join(SHOTS, `${name.replace(/[^a-z0-9]+/gi, "_")}-${i}.png`);
        await pages[i].screenshot({ path: f, timeout: 3000 }).catch(() => {});
        screenshot ||= f;
      }
    } catch { /* no screenshot */ }
    console.log(JSON.stringify({ scenario: name, ok: false, ms: Date.now() - t0, error: String(e.stack || e), screenshot }));
  } finally {
    await clearFaults().catch(() => {});
  }
}

// expiredToken is an SSO token for the add-in API that expired a few seconds ago: the proxy's clock skew still
// lets it through, Entra's OBO refuses it (AADSTS500133), and the proxy answers sso_token_expired.
async function expiredToken(user) {
  const t = await control("POST", `token?user=${user}&lifetime=-5s&client_id=${env.E2E_CLIENT_ID}`);
  return t.access_token;
}

// The scenarios of one mode: bearer tokens from the page's provider, login_url through its interaction.
async function bearerScenarios(mode, ctx, page, user, name) {
  await scenario(ctx, `${mode}/seed: sign-in, then the call`, async () => {
    const r = await call(page, "bearer", "/graph/me");
    assert(r.status === 200 && r.body?.name === name, "the first call", r);
    assert(ctx.prompts.includes("picker"), "the user signed in interactively", ctx.prompts);
  });
  await scenario(ctx, `${mode}/silent: a token from the cache, no prompt`, async () => {
    const r = await call(page, "bearer", "/graph/me");
    assert(r.status === 200 && r.calls.length === 1 && ctx.prompts.length === 0, "one request, no prompt", { r, p: ctx.prompts });
  });
  await scenario(ctx, `${mode}/mfa_required: claims popup, retry`, async () => {
    await fault(user, { kind: "mfa_required" });
    const r = await call(page, "bearer", "/mail/me");
    assert(r.status === 200, "recovered", r);
    assert(r.calls.length === 2 && r.calls[0].status === 401, "one refusal, one retry", r.calls);
    assert(ctx.prompts.includes("mfa"), "the emulator's MFA step was shown", ctx.prompts);
  });
  await scenario(ctx, `${mode}/consent_required: consent, retry`, async () => {
    await fault(user, { kind: "consent_required" });
    const r = await call(page, "bearer", "/files/me");
    assert(r.status === 200 && r.calls.length === 2 && r.calls[0].status === 401, "recovered after one refusal", r);
    assert(ctx.prompts.includes("consent"), "the emulator's consent step was shown", ctx.prompts);
  });
  await scenario(ctx, `${mode}/sso_token_expired: a fresh token, no prompt`, async () => {
    await page.evaluate((t) => window.e2e.setStale(t), await expiredToken(user));
    const r = await call(page, "bearer", "/calendar/me");
    assert(r.status === 200 && r.calls.length === 2 && r.calls[0].status === 401, "recovered after one refusal", r);
    assert(ctx.prompts.length === 0, "no prompt", ctx.prompts);
  });
  await scenario(ctx, `${mode}/unrecoverable: the typed error`, async () => {
    await fault(user, { kind: "blocked_by_conditional_access" });
    const r = await call(page, "bearer", "/api/me");
    const e = r.error;
    assert(e && e.isContractError && e.status === 403 && e.error === "access_denied" &&
      e.reason === "blocked_by_conditional_access" && e.correlationId, "a ContractError with the parsed contract", r);
    assert(r.calls.length === 1 && ctx.prompts.length === 0, "no retry, no prompt", { r, p: ctx.prompts });
  });
  await scenario(ctx, `${mode}/temporarily_unavailable: Retry-After, retry`, async () => {
    await fault("*", { kind: "throttled", retry_after: "1s", count: 1 });
    const r = await call(page, "bearer", "/api/me");
    assert(r.status === 200 && r.calls.length === 2 && r.calls[0].status === 503, "one 503, then 200", r);
    assert(r.ms >= 1000, "waited for Retry-After", r.ms);
  });
  if (mode === "popup") {
    await scenario(ctx, `${mode}/temporarily_unavailable: bounded wait and retries, then the typed error`, async () => {
      await fault("*", { kind: "throttled", retry_after: "30s" });
      const r = await call(page, "bounded", "/contacts/me");
      assert(r.error?.isContractError && r.error.error === "temporarily_unavailable" && r.error.status === 503,
        "a ContractError", r);
      assert(r.calls.length === 3 && r.ms >= 1000 && r.ms < 5000, "three calls, each wait capped at 0.5 s (+20%)", r);
    });
  }
  await scenario(ctx, `${mode}/abort: an AbortSignal ends the wait`, async () => {
    await fault("*", { kind: "down" });
    const r = await call(page, "bearer", "/contacts/me", { abortAfterMs: 300 });
    assert(r.error && (r.error.name === "TimeoutError" || r.error.name === "AbortError") && r.ms < 1500, "aborted", r);
  });
  await scenario(ctx, `${mode}/login_required in session mode: sign-in window, retry`, async () => {
    await page.evaluate(() => window.e2e.logout());
    const r = await call(page, "session", "/graph/me");
    assert(r.status === 200 && r.body?.name === name, "recovered", r);
    assert(r.calls.length === 2 && r.calls[0].status === 401 && !r.calls[0].bearer, "a session call: 401, then 200", r.calls);
  });
}

const t0 = Date.now();
{
  const ctx = await newUserContext("adele");
  const page = await openApp(ctx, "/app.html");
  await bearerScenarios("popup", ctx, page, "adele", "Adele Vance");
  await scenario(ctx, `popup/session mode: ${RUNS} runs, 0 lost sign-ins`, async () => {
    const lost = [];
    for (let i = 0; i < RUNS; i++) {
      await page.evaluate(() => window.e2e.logout());
      const r = await call(page, "strict", "/graph/me");
      if (r.status !== 200) lost.push({ run: i, r });
    }
    assert(lost.length === 0, `${lost.length} of ${RUNS} sign-ins lost`, lost.slice(0, 3));
  });
  await scenario(ctx, "popup/a login_url on another origin is not followed", async () => {
    const before = ctx.pages().length;
    const r = await call(page, "session", "/forged/me");
    assert(r.error?.isContractError && r.error.reason === "login_required" && r.calls.length === 1, "the typed error", r);
    assert(ctx.pages().length === before, "no window opened", ctx.pages().map((p) => p.url()));
  });
  await scenario(ctx, "popup/the demo page's client kit button", async () => {
    await page.evaluate(() => window.e2e.logout());
    const demo = await ctx.newPage();
    await demo.goto(BASE + "/demo/");
    await demo.click("#kit");
    await demo.waitForFunction(() => document.getElementById("out").textContent.includes("through the client kit"),
      null, { timeout: 15000 });
    const text = await demo.textContent("#out");
    assert(text.startsWith("200") && text.includes("Adele Vance"), "the demo page's call", text);
    await demo.close();
  });
  await ctx.close();
}
{
  const ctx = await newUserContext("lee");
  await scenario(ctx, "popup/partitioned cookies in a cross-site frame: the session handoff", async () => {
    const host = await ctx.newPage();
    await host.goto(env.E2E_FRAME_HOST + "/frame-host.html?addin=" + encodeURIComponent(env.E2E_FRAMED));
    const frame = await (await host.waitForSelector("iframe")).contentFrame();
    await frame.waitForFunction(() => window.e2eReady === true, null, { timeout: 15000 });
    const r = await frame.evaluate(() => window.e2e.call("session", "/graph/me"));
    assert(r.status === 200 && r.body?.name === "Lee Gu", "the framed add-in's call after sign-in", r);
    assert(r.calls.length === 2 && r.calls[0].status === 401, "401, sign-in with handoff, 200", r.calls);
  });
  await ctx.close();
}
{
  const ctx = await newUserContext("megan");
  const page = await openApp(ctx, "/office.html");
  await bearerScenarios("dialog", ctx, page, "megan", "Megan Bowen");
  await ctx.close();
}
await browser.close();
console.log(JSON.stringify({ done: true, failures, ms: Date.now() - t0 }));
process.exit(failures ? 1 : 0);

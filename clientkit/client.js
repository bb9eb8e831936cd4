// @tokeninjector/client: the browser side of caddy-token-injector's "interaction required" contract.
//
// createFetch() returns a fetch that sends the caller's token (or, without getToken, the session cookie), reads
// the proxy's 401/403/503 answers and does what each reason asks, at most once per request, then retries:
//   sso_token_expired, invalid_token       -> a fresh token
//   mfa_required, conditional_access       -> a token with the claims challenge
//   consent_required                       -> the consent the middle tier needs
//   login_required, interaction_required   -> interact(login_url) in session mode, an interactive token otherwise
//   temporarily_unavailable                -> wait Retry-After (bounded, with jitter), a bounded number of times
// When it cannot recover it rejects with a ContractError carrying the parsed answer. No dependencies, no bundler:
// the proxy serves this file at /.auth/client.js, and it is published to npm as @tokeninjector/client.

/** The version of the contract this kit speaks; the proxy that serves it speaks the same. */
export const CONTRACT_VERSION = 1;

// Messages of the sign-in completion page (internal/signin/pages.go).
const MSG_SIGNED_IN = "token_injector:signed_in";
const MSG_FAILED = "token_injector:sign_in_failed";
const MSG_ACK = "token_injector:ack";
const CHANNEL = "token_injector";

const TOKEN_REASONS = new Set(["sso_token_expired"]);
const CLAIMS_REASONS = new Set(["mfa_required", "conditional_access"]);
const LOGIN_REASONS = new Set(["login_required", "interaction_required"]);

/** The proxy's refusal, parsed: what the request needed and why the kit could not provide it. */
export class ContractError extends Error {
  constructor(problem, cause) {
    super(describe(problem), cause === undefined ? undefined : { cause });
    this.name = "ContractError";
    this.status = problem.status;
    this.error = problem.error;
    this.reason = problem.reason;
    this.description = problem.description;
    this.claims = problem.claims;
    this.scopes = problem.scopes;
    this.loginUrl = problem.loginUrl;
    this.correlationId = problem.correlationId;
    this.retryAfter = problem.retryAfter;
    this.response = problem.response;
  }
}

function describe(p) {
  let s = `${p.status || 0} ${p.error || "error"}`;
  if (p.reason) s += ` (${p.reason})`;
  if (p.description) s += `: ${p.description}`;
  if (p.correlationId) s += ` [correlation id ${p.correlationId}]`;
  return s;
}

/**
 * parseContract reads a proxy answer. It returns null for answers that are not the contract (2xx, or a body that
 * is not its JSON). It reads a clone, so the response stays readable.
 */
export async function parseContract(response) {
  if (response.ok) return null;
  const type = response.headers.get("Content-Type") || "";
  let body = null;
  if (type.includes("json")) {
    try {
      body = await response.clone().json();
    } catch {
      body = null;
    }
  }
  if (!body || typeof body !== "object" || typeof body.error !== "string") {
    if (response.status !== 503 && response.status !== 504 && response.status !== 429) return null;
    body = { error: "temporarily_unavailable" };
  }
  let loginUrl;
  if (typeof body.login_url === "string" && body.login_url) {
    loginUrl = new URL(body.login_url, response.url || globalThis.location?.href).href;
  }
  return {
    status: response.status,
    error: body.error,
    reason: typeof body.reason === "string" ? body.reason : undefined,
    description: typeof body.error_description === "string" ? body.error_description : undefined,
    claims: typeof body.claims === "string" && body.claims ? body.claims : undefined,
    scopes: Array.isArray(body.scopes) ? body.scopes.filter((s) => typeof s === "string") : [],
    loginUrl,
    correlationId: typeof body.correlation_id === "string" ? body.correlation_id : undefined,
    retryAfter: retryAfterSeconds(response.headers.get("Retry-After"), body.retry_after),
    response,
  };
}

function retryAfterSeconds(header, fromBody) {
  if (header) {
    const n = Number(header);
    if (Number.isFinite(n) && n >= 0) return n;
    const at = Date.parse(header);
    if (!Number.isNaN(at)) return Math.max(0, (at - Date.now()) / 1000);
  }
  return typeof fromBody === "number" && fromBody >= 0 ? fromBody : undefined;
}

/** What createFetch does next for a parsed answer; null when nothing will help. */
function plan(p, bearer, ownLogin) {
  if (p.error === "temporarily_unavailable") return "wait";
  if (p.status !== 401) return null;
  if (p.error === "invalid_token") return bearer ? "fresh" : ownLogin ? "login" : null;
  if (p.error !== "interaction_required") return null;
  if (!bearer) return ownLogin ? "login" : null;
  if (TOKEN_REASONS.has(p.reason)) return "fresh";
  if (CLAIMS_REASONS.has(p.reason)) return "claims";
  if (p.reason === "consent_required") return "consent";
  if (LOGIN_REASONS.has(p.reason) || !p.reason) return p.claims ? "claims" : "interactive";
  return null;
}

/**
 * createFetch returns a fetch-compatible function that acts on the proxy's contract. Options:
 *   getToken(request)   bearer mode: returns a token for the proxy's audience (msalTokenProvider,
 *                       officeTokenProvider); without it the kit works in session mode (cookies).
 *   interact(challenge) resolves when the user has finished with challenge.loginUrl (popupInteraction,
 *                       officeDialogInteraction); used for login_url.
 *   fetch               the fetch to wrap (default: globalThis.fetch).
 *   maxRetries          retries after temporarily_unavailable (default 2).
 *   maxRetryAfter       longest wait in seconds, whatever Retry-After says (default 10).
 *   credentials         the requests' credentials mode in session mode (default "same-origin"; "include" for a
 *                       proxy on another origin).
 */
export function createFetch(options = {}) {
  const { getToken, interact } = options;
  const baseFetch = options.fetch || globalThis.fetch.bind(globalThis);
  const maxRetries = options.maxRetries ?? 2;
  const maxRetryAfter = options.maxRetryAfter ?? 10;
  const bearer = typeof getToken === "function";

  return async function apiFetch(input, init = {}) {
    const signal = init.signal || (input instanceof Request ? input.signal : undefined);
    const original = new Request(input, init);
    const done = new Set(); // what was tried for this request: each reason at most once
    let retries = 0;
    let tokenRequest = {};
    for (;;) {
      throwIfAborted(signal);
      const headers = new Headers(original.headers);
      if (bearer) {
        const token = await getToken({ ...tokenRequest, signal });
        tokenRequest = {}; // a recovery's flags apply to the one retry that follows it
        headers.set("Authorization", "Bearer " + token);
      }
      const req = new Request(original.clone(), {
        headers,
        credentials: bearer ? original.credentials : options.credentials || original.credentials,
      });
      const response = await baseFetch(req);
      const p = await parseContract(response);
      if (!p) return response;
      // Only the proxy's own sign-in is followed: a login_url on another origin (an upstream's answer passed
      // through, say) would open a window the proxy did not choose.
      const step = plan(p, bearer, p.loginUrl && new URL(p.loginUrl).origin === new URL(original.url).origin);
      if (step === "wait") {
        if (retries >= maxRetries) throw new ContractError(p);
        retries++;
        await sleep(waitMs(p.retryAfter, maxRetryAfter, retries), signal);
        continue;
      }
      const key = step + ":" + (p.reason || p.error);
      if (!step || done.has(key) || (step === "login" && typeof interact !== "function")) {
        throw new ContractError(p);
      }
      done.add(key);
      try {
        tokenRequest = await recover(step, p, { interact, signal });
      } catch (e) {
        if (isAbort(e, signal)) throw e;
        throw new ContractError(p, e);
      }
    }
  };
}

/** The token request (for bearer mode) that answers p, after interacting when the step needs it. */
async function recover(step, p, { interact, signal }) {
  const contract = { reason: p.reason, scopes: p.scopes, correlationId: p.correlationId };
  switch (step) {
    case "fresh":
      return { forceRefresh: true, ...contract };
    case "claims":
      return { forceRefresh: true, claims: p.claims, ...contract };
    case "consent":
      return { forceRefresh: true, consent: true, ...contract };
    case "interactive":
      return { forceRefresh: true, interactive: true, ...contract };
    case "login":
      await interact(publicChallenge(p), { signal });
      return {};
  }
  return {};
}

function publicChallenge(p) {
  const { response, ...rest } = p;
  return rest;
}

/** Retry-After bounded by max seconds, with up to 20% jitter; 1 s, 2 s ... when the proxy named no delay. */
function waitMs(retryAfter, max, attempt) {
  const base = Math.min(retryAfter ?? attempt, max) * 1000;
  return Math.round(base + base * 0.2 * Math.random());
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(abortReason(signal));
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortReason(signal) {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

function throwIfAborted(signal) {
  if (signal?.aborted) throw abortReason(signal);
}

function isAbort(e, signal) {
  return !!signal?.aborted && (e === signal.reason || e?.name === "AbortError");
}

// ---- Token providers (bearer mode) ----

const MSAL_INTERACTION = new Set([
  "interaction_required", "consent_required", "login_required", "no_tokens_found", "no_account_error",
  "token_refresh_required", "native_account_unavailable", "bad_token", "invalid_grant",
]);

function msalNeedsInteraction(e) {
  return e?.name === "InteractionRequiredAuthError" || MSAL_INTERACTION.has(e?.errorCode);
}

/**
 * msalTokenProvider gets tokens for the proxy's API with MSAL.js (a PublicClientApplication, or a nestable one
 * for NAA in Office): silently first, then with a popup when MSAL says interaction is required. A claims
 * challenge goes to both; consent_required asks for consent (prompt=consent), which, with the middle tier's
 * knownClientApplications, consents its downstream permissions too.
 *   options.scopes   the proxy API's scopes, e.g. ["api://addin.example.com/<id>/access_as_user"]
 *   options.account  a function returning the account to use (default: the active account, else the first)
 *   options.popup    extra fields for acquireTokenPopup (redirectUri, ...)
 */
export function msalTokenProvider(pca, options = {}) {
  const scopes = options.scopes || [];
  return async function getToken(request = {}) {
    const account = options.account?.() || pca.getActiveAccount?.() || pca.getAllAccounts?.()[0];
    const base = { scopes, ...(request.claims ? { claims: request.claims } : {}) };
    if (account && !request.consent && !request.interactive) {
      try {
        const r = await pca.acquireTokenSilent({ ...base, account, forceRefresh: !!request.forceRefresh });
        return r.accessToken;
      } catch (e) {
        if (!msalNeedsInteraction(e)) throw e;
      }
    }
    const popup = { ...options.popup, ...base, ...(account ? { account, loginHint: account.username } : {}) };
    if (request.consent) popup.prompt = "consent";
    const r = await pca.acquireTokenPopup(popup);
    if (r.account && pca.setActiveAccount) pca.setActiveAccount(r.account);
    return r.accessToken;
  };
}

// Office SSO errors after which the dialog API (with MSAL) is the way (Microsoft's samples).
const OFFICE_FALLBACK = new Set([13000, 13001, 13003, 13004, 13005, 13006, 13007, 13008, 13010, 13012, 50001]);

/**
 * officeTokenProvider gets tokens with Office SSO (Office.auth.getAccessToken): a fresh one on request, with
 * authChallenge for a claims challenge and allowConsentPrompt for consent. When Office SSO is unavailable or
 * refuses (13000, 13003, 13007, 13012, 50001 ...), it calls options.fallback, say a msalTokenProvider whose
 * popup is the Office dialog, if given.
 */
export function officeTokenProvider(Office, options = {}) {
  return async function getToken(request = {}) {
    const opts = { allowSignInPrompt: true, allowConsentPrompt: !!request.consent || !!request.interactive };
    if (request.claims) opts.authChallenge = request.claims;
    try {
      return await Office.auth.getAccessToken(opts);
    } catch (e) {
      const code = Number(e?.code);
      if (options.fallback && (OFFICE_FALLBACK.has(code) || !Office.auth)) return options.fallback(request);
      throw e;
    }
  };
}

// ---- Interactions (login_url) ----

/** withMode returns loginUrl with mode=<mode> (and the caller's extra parameters). */
function withMode(loginUrl, mode, extra) {
  const u = new URL(loginUrl, globalThis.location?.href);
  u.searchParams.set("mode", mode);
  for (const [k, v] of Object.entries(extra || {})) u.searchParams.set(k, v);
  return u;
}

// A binding ties a sign-in window's session handoff to this page: with partitioned cookies (an add-in framed by
// Office on the web) the window's session cookie lands in another partition, so the completion page hands the
// sign-in over sealed to this binding, and the page redeems it at <sign-in path>/handoff.
function newBinding() {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function redeemHandoff(loginUrl, data, binding) {
  if (typeof data.handoff !== "string" || !data.handoff) return;
  const r = await fetch(new URL("handoff", loginUrl), {
    method: "POST", credentials: "include", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ handoff: data.handoff, binding }),
  });
  if (!r.ok) throw interactionError("handoff_failed", `The session handoff failed (${r.status}).`);
}

// completed redeems a handoff if the message carries one, then settles: resolve with the message (without the
// handoff), or reject with the sign-in's error.
function completed(loginUrl, data, binding, finish, resolve, reject) {
  if (data.type !== MSG_SIGNED_IN) {
    finish(reject, interactionError(data.error || "sign_in_failed", "Sign-in failed: " + (data.error || "unknown error")));
    return;
  }
  const { handoff, ...result } = data;
  redeemHandoff(loginUrl, data, binding).then(() => finish(resolve, result), (e) => finish(reject, e));
}

function interactionError(code, message) {
  const e = new Error(message);
  e.name = "InteractionError";
  e.code = code;
  return e;
}

/**
 * popupInteraction opens login_url in a popup and resolves when the completion page reports the sign-in; it
 * acknowledges the message, which is what lets the page close. A popup closed without a message is a cancel,
 * after a grace period in case the message is still on its way.
 *   options.width, options.height   the popup's size (default 483 x 600, as MSAL)
 *   options.timeout                 give up after this many ms (default 10 minutes)
 *   options.closedGrace             ms to wait for the message once the popup is closed (default 1000)
 *   options.params                  extra query parameters for login_url (the kit adds mode and a binding)
 */
export function popupInteraction(options = {}) {
  return function interact(challenge, { signal } = {}) {
    const binding = newBinding();
    const url = withMode(challenge.loginUrl, "popup", { binding, ...options.params });
    const w = options.width || 483;
    const h = options.height || 600;
    const top = Math.max(0, (globalThis.screen?.height || h) / 2 - h / 2);
    const left = Math.max(0, (globalThis.screen?.width || w) / 2 - w / 2);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const popup = window.open(url.href, "token_injector_sign_in", `popup,width=${w},height=${h},top=${top},left=${left}`);
      if (!popup) return reject(interactionError("popup_blocked", "The browser blocked the sign-in popup."));
      let channel = null;
      let closedAt = 0;
      let settled = false;
      let heard = false;
      const poll = setInterval(() => {
        if (!popup.closed || heard) return;
        closedAt ||= Date.now();
        if (Date.now() - closedAt >= (options.closedGrace ?? 1000)) finish(reject, interactionError("user_cancelled", "The sign-in window was closed."));
      }, 200);
      const timer = setTimeout(() => finish(reject, interactionError("timed_out", "Sign-in took too long.")),
        options.timeout || 600000);
      function finish(fn, value) {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        window.removeEventListener("message", onMessage);
        signal?.removeEventListener("abort", onAbort);
        try { channel?.close(); } catch { /* closed */ }
        fn(value);
      }
      function handle(data) {
        if (!data || typeof data !== "object") return;
        if (data.type !== MSG_SIGNED_IN && data.type !== MSG_FAILED) return;
        const ack = { type: MSG_ACK, id: data.id };
        try { popup.postMessage(ack, url.origin); } catch { /* gone */ }
        try { channel?.postMessage(ack); } catch { /* closed */ }
        if (heard) return; // the page sends until acknowledged
        heard = true;
        completed(url, data, binding, finish, resolve, reject);
      }
      function onMessage(e) {
        if (e.origin === url.origin && e.source === popup) handle(e.data);
      }
      function onAbort() {
        try { popup.close(); } catch { /* gone */ }
        finish(reject, abortReason(signal));
      }
      window.addEventListener("message", onMessage);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (url.origin === globalThis.location?.origin && typeof BroadcastChannel === "function") {
        channel = new BroadcastChannel(CHANNEL); // same origin only: when a COOP header cut window.opener
        channel.onmessage = (e) => handle(e.data);
      }
    });
  };
}

/**
 * officeDialogInteraction opens login_url in an Office dialog (Office.context.ui.displayDialogAsync) and resolves
 * when the completion page reports the sign-in through messageParent. It acknowledges with messageChild
 * (DialogApi 1.2) and closes the dialog.
 *   options.width, options.height   percent of the screen (default 40 x 60)
 *   options.displayInIframe         Office on the web: show the dialog in an iframe (default false)
 */
export function officeDialogInteraction(Office, options = {}) {
  return function interact(challenge, { signal } = {}) {
    const binding = newBinding();
    const url = withMode(challenge.loginUrl, "dialog", { binding, ...options.params });
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      let dialog = null;
      let settled = false;
      let heard = false;
      function finish(fn, value) {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        try { dialog?.close(); } catch { /* closed */ }
        fn(value);
      }
      function onAbort() {
        finish(reject, abortReason(signal));
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const opts = { width: options.width || 40, height: options.height || 60, displayInIframe: !!options.displayInIframe };
      Office.context.ui.displayDialogAsync(url.href, opts, (result) => {
        if (result.status !== "succeeded" && result.status !== Office.AsyncResultStatus?.Succeeded) {
          return finish(reject, interactionError(String(result.error?.code || "dialog_failed"),
            "Office could not open the sign-in dialog: " + (result.error?.message || "unknown error")));
        }
        dialog = result.value;
        dialog.addEventHandler(Office.EventType.DialogMessageReceived, (arg) => {
          if (arg.origin && arg.origin !== url.origin) return;
          let data;
          try { data = JSON.parse(arg.message); } catch { return; }
          if (!data || (data.type !== MSG_SIGNED_IN && data.type !== MSG_FAILED)) return;
          try { dialog.messageChild(JSON.stringify({ type: MSG_ACK, id: data.id })); } catch { /* DialogApi < 1.2 */ }
          if (heard) return;
          heard = true;
          completed(url, data, binding, finish, resolve, reject);
        });
        dialog.addEventHandler(Office.EventType.DialogEventReceived, (arg) => {
          if (heard) return; // closed by us once the message came
          // 12006: the user closed the dialog; 12002/12003: it could not load the page.
          finish(reject, interactionError(arg.error === 12006 ? "user_cancelled" : String(arg.error),
            arg.error === 12006 ? "The sign-in dialog was closed." : "The sign-in dialog failed (" + arg.error + ")."));
        });
      });
    });
  };
}

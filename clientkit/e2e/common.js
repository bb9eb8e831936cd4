// What both test pages share: MSAL.js set up against the emulator, and a call() the runner evaluates.
// The kit is imported from the proxy that serves it, as an add-in would.
export const q = new URLSearchParams(location.search);
export const apiScope = q.get("scope");

export async function newMSAL() {
  const idp = q.get("idp");
  const pca = new msal.PublicClientApplication({
    auth: {
      clientId: q.get("client_id"),
      authority: idp + "/" + q.get("tenant"),
      knownAuthorities: [new URL(idp).host],
      redirectUri: location.origin + "/redirect.html",
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await pca.initialize();
  return pca;
}

// calls records every request the kit sent and the status it got.
export const calls = [];
export async function countingFetch(req) {
  const r = await fetch(req);
  calls.push({ url: new URL(req.url).pathname, status: r.status, bearer: req.headers.has("Authorization") });
  return r;
}

export function exposeCall(fetchers, extra) {
  async function call(which, path, opts = {}) {
    calls.length = 0;
    const t0 = performance.now();
    const init = opts.abortAfterMs ? { signal: AbortSignal.timeout(opts.abortAfterMs) } : {};
    try {
      const r = await fetchers[which](path, init);
      return { status: r.status, body: await r.json().catch(() => null), calls: [...calls], ms: performance.now() - t0 };
    } catch (e) {
      return {
        error: { name: e.name, message: String(e.message), isContractError: e.constructor?.name === "ContractError",
          status: e.status, error: e.error, reason: e.reason, claims: e.claims, scopes: e.scopes, loginUrl: e.loginUrl,
          correlationId: e.correlationId, code: e.code },
        calls: [...calls], ms: performance.now() - t0,
      };
    }
  }
  window.e2e = {
    call,
    logout: async () => (await fetch("/.auth/logout", { method: "POST" })).status,
    ...extra,
  };
  window.e2eReady = true;
}

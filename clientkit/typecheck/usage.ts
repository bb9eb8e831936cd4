// Type-checked by `npm run typecheck` (tsc --noEmit): the README's usage, against client.d.ts.
import {
  ContractError,
  createFetch,
  msalTokenProvider,
  officeDialogInteraction,
  officeTokenProvider,
  parseContract,
  popupInteraction,
  type MsalClientLike,
  type OfficeLike,
} from "../client.js";

declare const pca: MsalClientLike;
declare const Office: OfficeLike;

const apiFetch = createFetch({
  getToken: msalTokenProvider(pca, { scopes: ["api://addin.example.com/5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c/access_as_user"] }),
  interact: popupInteraction(),
});

const officeFetch = createFetch({
  getToken: officeTokenProvider(Office, { fallback: msalTokenProvider(pca, { scopes: ["api://x/access_as_user"] }) }),
  interact: officeDialogInteraction(Office, { width: 30, height: 50 }),
  maxRetries: 3,
});

const sessionFetch = createFetch({ interact: popupInteraction({ width: 500 }), credentials: "include" });

export async function main(signal: AbortSignal): Promise<string> {
  try {
    const me: { displayName: string } = await (await apiFetch("/graph/v1.0/me", { signal })).json();
    await officeFetch(new Request("/api/items", { method: "POST", body: "{}" }));
    const r = await sessionFetch(new URL("https://proxy.example/graph/me"));
    const c = await parseContract(r);
    if (c && c.reason === "mfa_required") return c.claims ?? "";
    return me.displayName;
  } catch (e) {
    if (e instanceof ContractError) {
      const parts: (string | undefined)[] = [e.reason, e.claims, e.loginUrl, e.correlationId, ...e.scopes];
      return parts.join(" ") + e.status + e.response.status;
    }
    throw e;
  }
}

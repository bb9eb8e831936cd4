import { createFetch, officeDialogInteraction, officeTokenProvider } from "/.auth/client.js";
import { apiScope, countingFetch, exposeCall, newMSAL } from "/common.js";

// Office SSO's own sign-in and consent UI is not ours to test: the shim's getAccessToken is MSAL.js, as an
// add-in's fallback would be, and honours authChallenge and allowConsentPrompt the way Office does.
const pca = await newMSAL();
let stale = null;
Office.__setGetAccessToken(async (opts) => {
  if (stale) {
    const t = stale;
    stale = null;
    return t;
  }
  const account = pca.getActiveAccount() || pca.getAllAccounts()[0];
  const req = { scopes: [apiScope], ...(opts.authChallenge ? { claims: opts.authChallenge } : {}) };
  if (account && !opts.allowConsentPrompt) {
    try {
      return (await pca.acquireTokenSilent({ ...req, account, forceRefresh: !!opts.authChallenge })).accessToken;
    } catch (e) {
      if (!(e instanceof msal.InteractionRequiredAuthError)) throw e;
    }
  }
  if (!account && !opts.allowSignInPrompt) throw Object.assign(new Error("not signed in"), { code: 13001 });
  const r = await pca.acquireTokenPopup({ ...req, ...(opts.allowConsentPrompt ? { prompt: "consent" } : {}) });
  pca.setActiveAccount(r.account);
  return r.accessToken;
});

await Office.onReady();
exposeCall({
  bearer: createFetch({ getToken: officeTokenProvider(Office), interact: officeDialogInteraction(Office), fetch: countingFetch, maxRetryAfter: 3 }),
  session: createFetch({ interact: officeDialogInteraction(Office), fetch: countingFetch }),
}, { setStale: (t) => { stale = t; } });

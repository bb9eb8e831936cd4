import { createFetch, msalTokenProvider, popupInteraction } from "/.auth/client.js";
import { apiScope, countingFetch, exposeCall, newMSAL } from "/common.js";

const pca = await newMSAL();
const fromMSAL = msalTokenProvider(pca, { scopes: [apiScope] });
// stale stands in for a cached SSO token that expired a moment ago: handed out once, as a token cache might.
let stale = null;
const getToken = async (req) => {
  if (stale && !req.forceRefresh) {
    const t = stale;
    stale = null;
    return t;
  }
  return fromMSAL(req);
};
exposeCall({
  bearer: createFetch({ getToken, interact: popupInteraction(), fetch: countingFetch, maxRetryAfter: 3 }),
  session: createFetch({ interact: popupInteraction(), fetch: countingFetch }),
  // A page that reads "closed" as "cancelled" at once: only the completion page's wait for the acknowledgement
  // keeps its sign-ins from being lost.
  // Waits at most 0.5 s whatever Retry-After says, and retries twice.
  bounded: createFetch({ getToken, fetch: countingFetch, maxRetryAfter: 0.5, maxRetries: 2 }),
  strict: createFetch({ interact: popupInteraction({ closedGrace: 0 }), fetch: countingFetch }),
}, { setStale: (t) => { stale = t; } });

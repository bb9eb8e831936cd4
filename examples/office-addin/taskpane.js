// The task pane: calls Microsoft Graph through caddy-token-injector with the client kit it serves.
//   1. NAA (nested app authentication): MSAL.js's createNestablePublicClientApplication, where Office supports it;
//   2. otherwise Office SSO (Office.auth.getAccessToken), falling back to MSAL.js in an Office dialog;
//   3. login_url (session mode) in an Office dialog (officeDialogInteraction).
import { createFetch, msalTokenProvider, officeDialogInteraction, officeTokenProvider, ContractError }
  from "/.auth/client.js";
import { config } from "./config.js";

const out = document.getElementById("out");
const show = (mode) => { document.getElementById("mode").textContent = mode; };

async function tokenProvider() {
  const msalConfig = {
    auth: { clientId: config.spaClientId, authority: config.authority, knownAuthorities: config.knownAuthorities,
      redirectUri: new URL("redirect.html", location.href).href },
  };
  if (Office.context.requirements?.isSetSupported?.("NestedAppAuth", "1.1")) {
    show("nested app authentication (MSAL.js)");
    const pca = await msal.createNestablePublicClientApplication(msalConfig);
    return msalTokenProvider(pca, { scopes: [config.apiScope] });
  }
  // Office SSO, and MSAL.js popups when Office cannot (13000, 13003, 13007, 13012 ...). Outside Office hosts that
  // allow popups, a dialog-hosted MSAL page is the next step; the kit's officeDialogInteraction covers login_url.
  show("Office SSO (getAccessToken), MSAL.js as the fallback");
  const pca = new msal.PublicClientApplication(msalConfig);
  await pca.initialize();
  return officeTokenProvider(Office, { fallback: msalTokenProvider(pca, { scopes: [config.apiScope] }) });
}

Office.onReady(async () => {
  const apiFetch = createFetch({ getToken: await tokenProvider(), interact: officeDialogInteraction(Office) });
  document.getElementById("me").addEventListener("click", async () => {
    out.textContent = "…";
    try {
      const r = await apiFetch(config.graphMe);
      out.textContent = `${r.status}\n` + JSON.stringify(await r.json(), null, 2);
    } catch (e) {
      out.textContent = e instanceof ContractError
        ? `The proxy said ${e.error} (${e.reason || "no reason"}); correlation id ${e.correlationId}`
        : String(e);
    }
  });
});

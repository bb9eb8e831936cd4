// The registration values this sample uses. The defaults are the local emulator's demo tenant
// (`go run ./cmd/caddy run`); for a real tenant, see README.md.
export const config = {
  // The add-in's own client (a SPA registration: NAA and the dialog fallback use it).
  spaClientId: "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
  // The middle tier's API scope: the audience the proxy accepts.
  apiScope: "api://localhost/5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c/access_as_user",
  authority: "https://localhost:9443/contoso.onmicrosoft.com",
  // The emulator is not login.microsoftonline.com, so MSAL must be told it is an authority; drop for Entra.
  knownAuthorities: ["localhost:9443"],
  // The proxy routes, on this page's origin.
  graphMe: "/graph/me",
};

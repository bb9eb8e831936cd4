import { createFetch, popupInteraction } from "/.auth/client.js";
import { countingFetch, exposeCall } from "/common.js";

// Session mode in a cross-site frame: the sign-in popup's session cookie lands in the popup's own partition, so
// the kit redeems the completion page's handoff in this frame's partition.
exposeCall({ session: createFetch({ interact: popupInteraction(), fetch: countingFetch, credentials: "include" }) });

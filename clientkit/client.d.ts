// Type declarations for @tokeninjector/client (client.js). No runtime dependencies; MSAL.js and Office.js are
// described structurally, so neither package is needed to type-check code that uses the kit.

/** The version of the contract this kit speaks. */
export declare const CONTRACT_VERSION: 1;

/** A reason of the proxy's interaction_required answers. */
export type Reason =
  | "sso_token_expired"
  | "mfa_required"
  | "conditional_access"
  | "consent_required"
  | "login_required"
  | "interaction_required"
  | "blocked_by_conditional_access"
  | "client_app_not_allowed"
  | (string & {});

/** A proxy refusal, parsed. */
export interface Contract {
  status: number;
  /** The contract's error: invalid_token, interaction_required, temporarily_unavailable, access_denied ... */
  error: string;
  reason?: Reason;
  description?: string;
  /** Entra's claims challenge, the JSON string unchanged. */
  claims?: string;
  /** The downstream scopes the request needed. */
  scopes: string[];
  /** Where the user signs in (absolute), when sign-in can fix it. */
  loginUrl?: string;
  correlationId?: string;
  /** Seconds, from Retry-After. */
  retryAfter?: number;
}

/** What interact() gets: the parsed answer whose loginUrl the user must visit. */
export type Challenge = Contract & { loginUrl: string };

/** The rejection when the kit cannot recover. */
export declare class ContractError extends Error implements Contract {
  readonly name: "ContractError";
  status: number;
  error: string;
  reason?: Reason;
  description?: string;
  claims?: string;
  scopes: string[];
  loginUrl?: string;
  correlationId?: string;
  retryAfter?: number;
  /** The proxy's answer (its body is still readable). */
  response: Response;
  constructor(problem: Contract & { response: Response }, cause?: unknown);
}

/** What createFetch asks getToken for. */
export interface TokenRequest {
  /** Skip any cached token. */
  forceRefresh?: boolean;
  /** A claims challenge to satisfy (MFA, Conditional Access). */
  claims?: string;
  /** The user must consent (consent_required). */
  consent?: boolean;
  /** Only an interactive sign-in helps (login_required). */
  interactive?: boolean;
  /** The reason that led here, and the downstream scopes the proxy named. */
  reason?: Reason;
  scopes?: string[];
  correlationId?: string;
  signal?: AbortSignal;
}

/** Returns a token for the proxy's audience. */
export type GetToken = (request: TokenRequest) => Promise<string>;

/** Resolves when the user has finished with challenge.loginUrl. */
export type Interact = (challenge: Challenge, options?: { signal?: AbortSignal }) => Promise<unknown>;

export interface CreateFetchOptions {
  /** Bearer mode: a token provider. Without it the kit works in session mode (cookies). */
  getToken?: GetToken;
  /** Used for login_url. */
  interact?: Interact;
  /** The fetch to wrap; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Retries after temporarily_unavailable; default 2. */
  maxRetries?: number;
  /** The longest wait in seconds, whatever Retry-After says; default 10. */
  maxRetryAfter?: number;
  /** Session mode: the requests' credentials; default the request's own ("same-origin"). */
  credentials?: RequestCredentials;
}

/** A fetch that acts on the proxy's contract; it rejects with ContractError when it cannot recover. */
export type ApiFetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

export declare function createFetch(options?: CreateFetchOptions): ApiFetch;

/** Reads a proxy answer; null when it is not the contract. The response stays readable. */
export declare function parseContract(response: Response): Promise<(Contract & { response: Response }) | null>;

/** The parts of an MSAL.js account the kit uses. */
export interface MsalAccountLike {
  username: string;
  homeAccountId?: string;
}

/** The parts of an MSAL.js (Nestable)PublicClientApplication the kit uses. */
export interface MsalClientLike {
  acquireTokenSilent(request: {
    scopes: string[];
    account: any;
    claims?: string;
    forceRefresh?: boolean;
  }): Promise<{ accessToken: string; account?: any }>;
  acquireTokenPopup(request: {
    scopes: string[];
    account?: any;
    claims?: string;
    prompt?: string;
    loginHint?: string;
    [extra: string]: unknown;
  }): Promise<{ accessToken: string; account?: any }>;
  getActiveAccount?(): any;
  getAllAccounts?(): any[];
  setActiveAccount?(account: any): void;
}

export interface MsalTokenProviderOptions {
  /** The proxy API's scopes, e.g. ["api://addin.example.com/<id>/access_as_user"]. */
  scopes: string[];
  /** The account to use; default the active account, else the first. */
  account?: () => MsalAccountLike | null | undefined;
  /** Extra fields for acquireTokenPopup (redirectUri ...). */
  popup?: Record<string, unknown>;
}

export declare function msalTokenProvider(pca: MsalClientLike, options: MsalTokenProviderOptions): GetToken;

/** The parts of Office.js the kit uses. */
export interface OfficeLike {
  auth: {
    getAccessToken(options?: {
      allowSignInPrompt?: boolean;
      allowConsentPrompt?: boolean;
      forMSGraphAccess?: boolean;
      authChallenge?: string;
    }): Promise<string>;
  };
  context: {
    ui: {
      displayDialogAsync(
        url: string,
        options: { width?: number; height?: number; displayInIframe?: boolean },
        callback: (result: { status: string; value: OfficeDialogLike; error?: { code: number; message: string } }) => void,
      ): void;
    };
  };
  EventType: { DialogMessageReceived: any; DialogEventReceived: any };
  AsyncResultStatus?: { Succeeded: any };
}

export interface OfficeDialogLike {
  addEventHandler(type: any, handler: (arg: any) => void): void;
  messageChild?(message: string, options?: { targetOrigin?: string }): void;
  close(): void;
}

export interface OfficeTokenProviderOptions {
  /** Used when Office SSO is unavailable or refuses (13000, 13003, 13007, 13012, 50001 ...). */
  fallback?: GetToken;
}

export declare function officeTokenProvider(Office: OfficeLike, options?: OfficeTokenProviderOptions): GetToken;

export interface PopupInteractionOptions {
  width?: number;
  height?: number;
  /** Give up after this many milliseconds; default 10 minutes. */
  timeout?: number;
  /** Milliseconds to wait for the completion message once the popup is closed; default 1000. */
  closedGrace?: number;
  /** Extra query parameters for login_url (the kit adds mode and the handoff binding itself). */
  params?: Record<string, string>;
}

export declare function popupInteraction(options?: PopupInteractionOptions): Interact;

export interface OfficeDialogInteractionOptions {
  /** Percent of the screen; default 40 x 60. */
  width?: number;
  height?: number;
  displayInIframe?: boolean;
  params?: Record<string, string>;
}

export declare function officeDialogInteraction(Office: OfficeLike, options?: OfficeDialogInteractionOptions): Interact;

package signin

import (
	"html/template"
	"net/http"
	"strconv"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
)

// Messages the popup and dialog pages post to the window that opened them. They never carry a token.
const (
	msgSignedIn = "token_injector:signed_in"
	msgFailed   = "token_injector:sign_in_failed"
	// msgAck is what the opener (or the Office host, with messageChild) answers, with the message's id.
	msgAck = "token_injector:ack"
	// fallbackCloseMs is how long a completion page waits for the acknowledgement before it closes anyway.
	fallbackCloseMs = "3000"
)

// officeJS is Microsoft's hosted Office.js, loaded only by dialog-mode pages (Office.context.ui.messageParent).
const (
	officeJS     = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
	officeJSHost = "https://appsforoffice.microsoft.com"
)

// failure is an error answer: an HTML page for browsers, the JSON contract for scripts.
type failure struct {
	status         int
	code           string // the contract's error code; derived from status when empty
	title, message string
	detail         string // extra text shown to the user, e.g. Entra's error; escaped, never a secret
	retryAfter     int    // seconds; sent as Retry-After when set
}

// page is what the one HTML template renders.
type page struct {
	Title, Message, Detail string
	// Notify, when set, makes the page tell its opener (popup) or Office host (dialog) how sign-in ended.
	Notify *notification
	// AutoClose closes the window after notifying.
	AutoClose bool
	// Form, when set, is a sign-out button (the logout confirmation).
	Form  *logoutForm
	Nonce string
}

type notification struct {
	Message any
	// Origins are the postMessage targets: the page's own origin and the allowed origins, never "*".
	Origins []string
	Dialog  bool
}

type logoutForm struct{ Action, ReturnTo string }

// fail answers f; pl, when the sign-in attempt is known, lets a popup or dialog page report the failure.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, f failure, pl *preLogin) {
	if f.code == "" {
		f.code = map[int]string{http.StatusForbidden: contract.CodeAccessDenied, http.StatusUnauthorized: contract.CodeAccessDenied,
			http.StatusBadGateway: contract.CodeServerError, http.StatusServiceUnavailable: contract.CodeTemporarilyUnavailable,
		}[f.status]
		if f.code == "" {
			f.code = contract.CodeInvalidRequest
		}
	}
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	}
	if contract.PrefersJSON(r) {
		desc := f.message
		if f.detail != "" {
			desc += " (" + f.detail + ")"
		}
		(&contract.Problem{Status: f.status, Code: f.code, Description: desc, RetryAfterSeconds: f.retryAfter}).Write(w)
		return
	}
	p := page{Title: f.title, Message: f.message, Detail: f.detail}
	if pl != nil {
		p.Notify = h.notification(r, pl.Mode, map[string]any{"type": msgFailed, "error": f.code})
	}
	h.render(w, f.status, p)
}

// notification builds the popup or dialog message for r; nil in redirect mode.
func (h *Handler) notification(r *http.Request, mode string, msg map[string]any) *notification {
	if mode != modePopup && mode != modeDialog {
		return nil
	}
	origins := []string{}
	own, err := cors.NormalizeOrigin(origin(r))
	if err == nil {
		origins = append(origins, own)
	}
	for _, o := range h.cfg.CORS.AllowedOrigins {
		if o != own {
			origins = append(origins, o)
		}
	}
	msg["id"] = randomString(12) // what the acknowledgement names; not a secret
	return &notification{Message: msg, Origins: origins, Dialog: mode == modeDialog}
}

// render writes p with a strict Content-Security-Policy: only the page's own nonce'd script runs (plus Office.js
// from Microsoft's CDN in dialog mode), and nothing loads or submits elsewhere.
func (h *Handler) render(w http.ResponseWriter, status int, p page) {
	p.Nonce = randomString(18)
	scripts := "'nonce-" + p.Nonce + "'"
	csp := "default-src 'none'; base-uri 'none'; form-action 'self'; style-src 'nonce-" + p.Nonce + "'"
	if p.Notify != nil && p.Notify.Dialog {
		// Office may show the dialog in an iframe (displayInIframe), so framing stays allowed here.
		scripts += " " + officeJSHost
		csp += "; connect-src 'self' " + officeJSHost
	} else {
		csp += "; frame-ancestors 'none'"
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp+"; script-src "+scripts)
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}}</title>
<style nonce="{{.Nonce}}">body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code{word-break:break-all}</style>
{{- with .Notify}}{{if .Dialog}}
<script src="` + officeJS + `" nonce="{{$.Nonce}}"></script>
{{- end}}{{end}}
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- with .Detail}}
<p>Details: <code>{{.}}</code></p>
{{- end}}
{{- with .Form}}
<form method="post" action="{{.Action}}"><input type="hidden" name="return_to" value="{{.ReturnTo}}"><button type="submit">Sign out</button></form>
{{- end}}
{{- if not .Notify}}
<p><a href="/">Return to the application</a></p>
{{- end}}
{{- with .Notify}}
<script nonce="{{$.Nonce}}">
(function () {
  "use strict";
  var msg = {{.Message}}, origins = {{.Origins}}, dialog = {{.Dialog}}, autoClose = {{$.AutoClose}};
  // The window stays open until the opener (or the Office host) acknowledges the message, so a page that reads
  // "closed" as "cancelled" never loses a sign-in; without an acknowledgement it closes after a short delay.
  var ackType = "` + msgAck + `", resendMs = 250, fallbackMs = ` + fallbackCloseMs + `;
  var done = false, channel = null, timers = [];
  // The callback URL carried the code; keep it out of history.
  try { history.replaceState(null, "", location.pathname); } catch (e) {}
  function isAck(d) { return !!d && d.type === ackType && d.id === msg.id; }
  function finish() {
    if (done) { return; }
    done = true;
    for (var i = 0; i < timers.length; i++) { clearInterval(timers[i]); }
    try { if (channel) { channel.close(); } } catch (e) {}
    if (autoClose) { try { window.close(); } catch (e) {} }
  }
  window.addEventListener("message", function (e) {
    if (origins.indexOf(e.origin) >= 0 && isAck(e.data)) { finish(); }
  });
  // Same-origin openers still hear it when a Cross-Origin-Opener-Policy on the way cut window.opener.
  try {
    channel = new BroadcastChannel("token_injector");
    channel.onmessage = function (e) { if (isAck(e.data)) { finish(); } };
  } catch (e) {}
  function toOpener() {
    try {
      if (window.opener && window.opener !== window) {
        for (var i = 0; i < origins.length; i++) {
          try { window.opener.postMessage(msg, origins[i]); } catch (e) {}
        }
      }
    } catch (e) {}
  }
  function toChannel() {
    try { if (channel) { channel.postMessage(msg); } } catch (e) {}
  }
  function toOffice() {
    var ui = window.Office && Office.context && Office.context.ui;
    if (!ui || !ui.messageParent) { return false; }
    var s = JSON.stringify(msg), req = Office.context.requirements;
    try {
      if (req && req.isSetSupported && req.isSetSupported("DialogApi", "1.2")) {
        // DialogApi 1.2: the parent acknowledges with messageChild.
        try {
          ui.addHandlerAsync(Office.EventType.DialogParentMessageReceived, function (arg) {
            try { if (isAck(JSON.parse(arg.message))) { finish(); } } catch (e) {}
          });
        } catch (e) {}
        for (var i = 0; i < origins.length; i++) {
          try { ui.messageParent(s, { targetOrigin: origins[i] }); } catch (e) {}
        }
      } else {
        ui.messageParent(s);
      }
      return true;
    } catch (e) { return false; }
  }
  function start(viaOffice) {
    function send() { if (!done) { if (!viaOffice) { toOpener(); } toChannel(); } }
    send();
    timers.push(setInterval(send, resendMs)); // a message sent before the opener listened is sent again
    timers.push(setTimeout(finish, fallbackMs));
  }
  if (dialog && window.Office && Office.onReady) {
    Office.onReady(function () { start(toOffice()); });
    return;
  }
  start(false);
})();
</script>
{{- end}}
</body>
</html>
`))

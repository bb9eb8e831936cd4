// A stand-in for Office.js in the task pane, for browser tests (real Office cannot run here). It shims:
//   Office.onReady, Office.context.requirements.isSetSupported,
//   Office.auth.getAccessToken (the test page supplies it),
//   Office.context.ui.displayDialogAsync: the dialog is a window.open popup; the returned Dialog has
//   addEventHandler (DialogMessageReceived, DialogEventReceived 12006 when the user closes it), messageChild
//   and close. office-dialog-shim.js is its counterpart inside the dialog (messageParent, addHandlerAsync).
(function () {
  "use strict";
  var EventType = {
    DialogMessageReceived: "dialogMessageReceived",
    DialogEventReceived: "dialogEventReceived",
    DialogParentMessageReceived: "dialogParentMessageReceived",
  };
  var getAccessToken = null;
  var info = { host: "Word", platform: "OfficeOnline" };
  window.Office = {
    EventType: EventType,
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    onReady: function (cb) {
      return new Promise(function (resolve) { setTimeout(function () { if (cb) cb(info); resolve(info); }); });
    },
    auth: { getAccessToken: function (opts) { return getAccessToken(opts || {}); } },
    context: {
      requirements: { isSetSupported: function () { return true; } },
      ui: {
        displayDialogAsync: function (url, options, cb) {
          var target = new URL(url, location.href);
          var win = window.open(target.href, "office_dialog", "popup,width=480,height=640");
          if (!win) { cb({ status: "failed", error: { code: 12009, message: "blocked" } }); return; }
          var handlers = {}, closedByParent = false;
          function emit(type, arg) { (handlers[type] || []).forEach(function (h) { h(arg); }); }
          function onMessage(e) {
            if (e.source === win && e.data && e.data.officeShim === "messageParent") {
              emit(EventType.DialogMessageReceived, { message: e.data.message, origin: e.origin });
            }
          }
          window.addEventListener("message", onMessage);
          var poll = setInterval(function () {
            if (!win.closed) return;
            clearInterval(poll);
            window.removeEventListener("message", onMessage);
            if (!closedByParent) emit(EventType.DialogEventReceived, { error: 12006 });
          }, 200);
          cb({
            status: "succeeded",
            value: {
              addEventHandler: function (type, h) { (handlers[type] = handlers[type] || []).push(h); },
              messageChild: function (message) { win.postMessage({ officeShim: "parentMessage", message: message }, target.origin); },
              close: function () { closedByParent = true; try { win.close(); } catch (e) {} },
            },
          });
        },
      },
    },
    __setGetAccessToken: function (f) { getAccessToken = f; },
  };
})();

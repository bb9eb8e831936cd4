// The dialog's side of the Office.js stand-in: the test serves it for the completion page's office.js URL
// (https://appsforoffice.microsoft.com/lib/1/hosted/office.js). messageParent posts to the task pane that
// opened the dialog (office-host-shim.js); addHandlerAsync(DialogParentMessageReceived) hears messageChild.
(function () {
  "use strict";
  var handlers = [];
  window.addEventListener("message", function (e) {
    if (e.source === window.opener && e.data && e.data.officeShim === "parentMessage") {
      handlers.forEach(function (h) { h({ message: e.data.message, origin: e.origin }); });
    }
  });
  var info = { host: "Word", platform: "OfficeOnline" };
  window.Office = {
    EventType: { DialogParentMessageReceived: "dialogParentMessageReceived" },
    onReady: function (cb) {
      return new Promise(function (resolve) { setTimeout(function () { if (cb) cb(info); resolve(info); }); });
    },
    context: {
      requirements: { isSetSupported: function (name) { return name === "DialogApi"; } },
      ui: {
        messageParent: function (message, opts) {
          window.opener.postMessage({ officeShim: "messageParent", message: message }, (opts && opts.targetOrigin) || "*");
        },
        addHandlerAsync: function (type, h, cb) { handlers.push(h); if (cb) cb({ status: "succeeded" }); },
      },
    },
  };
})();

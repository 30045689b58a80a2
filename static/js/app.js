// Small progressive enhancements (no inline scripts: the CSP allows only files from this site).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});

// Web Share API (phones): buttons with data-share-url stay hidden where the browser cannot share.
if (navigator.share) {
  document.querySelectorAll("[data-share-url]").forEach(function (button) { button.hidden = false; });
}
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-share-url]");
  if (!button || !navigator.share) return;
  navigator.share({
    title: document.title,
    text: button.getAttribute("data-share-text") || "",
    url: button.getAttribute("data-share-url")
  }).catch(function () { /* the customer closed the share sheet */ });
});

// Buy forms (data-busy): show that the tap registered on a slow connection. The button stays usable: a
// second tap re-sends the same idempotency key, so it can never buy twice.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.matches || !form.matches("form[data-busy]")) return;
  var button = form.querySelector("button[type=submit]");
  if (!button) return;
  if (!button.hasAttribute("data-label")) button.setAttribute("data-label", button.textContent);
  button.textContent = form.getAttribute("data-busy");
  button.setAttribute("aria-busy", "true");
});
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-busy] button[data-label]").forEach(function (button) {
    button.textContent = button.getAttribute("data-label");
    button.removeAttribute("aria-busy");
  });
});

// Live staff blocks ([data-live], polled by htmx "every 10s"): no request while the tab is hidden, and a
// fresh one as soon as it is shown again ("live-refresh" is one of their triggers). Done here rather than
// with an hx-trigger filter: filters are evaluated with eval, which the CSP forbids.
document.addEventListener("htmx:beforeRequest", function (event) {
  var elt = event.detail && event.detail.elt;
  if (document.visibilityState === "hidden" && elt && elt.hasAttribute && elt.hasAttribute("data-live")) {
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", function () {
  if (document.visibilityState !== "visible" || !window.htmx) return;
  document.querySelectorAll("[data-live]").forEach(function (elt) { window.htmx.trigger(elt, "live-refresh"); });
});

// Errors for htmx requests: the message goes to #flash, where the customer can see it (issue 13).
// - Our own error answers (app/core/errors.py) carry HX-Retarget: #flash; the htmx-config in base.html does
//   not swap 4xx/5xx, so they are let through here.
// - Anything else (a proxy's 502 page, a plain 400 from the host check) is never swapped into the page: a
//   short message of our own is shown instead.
// - No answer at all (offline, DNS, the connection dropped) or a timeout: say so.
// The message is scrolled into view and focused (a phone user is often far down the form), except for
// background polls (hx-trigger "every ...", [data-live]), which must not make the page jump.
var CONNECTION_MESSAGE = "check your connection and try again.";

function siteName() {
  var brand = document.querySelector(".brand");
  return (brand && brand.textContent.trim()) || "TopUp NG";
}

function isBackground(elt) {
  if (!elt || !elt.getAttribute) return false;
  return elt.hasAttribute("data-live") || /(^|[\s,])every\s/.test(elt.getAttribute("hx-trigger") || "");
}

function revealFlash(flash) {
  var alert = flash.querySelector("[role=alert]") || flash.firstElementChild;
  if (!alert) return;
  if (flash.scrollIntoView) flash.scrollIntoView({ block: "start" });
  alert.setAttribute("tabindex", "-1");
  alert.focus({ preventScroll: true });
}

function showFlash(message, background) {
  var flash = document.getElementById("flash");
  if (!flash) return;
  var alert = document.createElement("p");
  alert.className = "alert alert-error";
  alert.setAttribute("role", "alert");
  alert.textContent = message;  // text only: nothing from an answer we do not own reaches the page as HTML
  flash.replaceChildren(alert);
  if (!background) revealFlash(flash);
}

document.addEventListener("htmx:beforeSwap", function (event) {
  var detail = event.detail;
  var xhr = detail && detail.xhr;
  if (!xhr || xhr.status < 400 || xhr.status === 422 || xhr.status === 429) return;
  var target = detail.target;
  if (xhr.getResponseHeader("HX-Retarget") && target && target.id === "flash") {
    detail.shouldSwap = true;  // ours: a rendered partials/error_flash.html
    detail.isError = false;  // handled: no htmx:responseError console noise
    return;
  }
  detail.shouldSwap = false;
  detail.isError = false;
  var what = xhr.status >= 500 ? "Something went wrong on the way to " + siteName() : "That did not work";
  showFlash(what + " (error " + xhr.status + "). Please try again in a moment.", isBackground(detail.elt));
});

function unreachable(event) {
  var elt = event.detail && event.detail.elt;
  showFlash("We could not reach " + siteName() + ": " + CONNECTION_MESSAGE, isBackground(elt));
}
document.addEventListener("htmx:sendError", unreachable);
document.addEventListener("htmx:timeout", unreachable);

document.addEventListener("htmx:afterSwap", function (event) {
  var detail = event.detail;
  if (!detail || !detail.target || detail.target.id !== "flash" || isBackground(detail.elt)) return;
  revealFlash(detail.target);
});

// The installable app (docs/architecture.md, "The installable app"; the worker is /sw.js, app/core/sw.js).
// - Registered on every page, staff console included: a worker's scope is the whole site wherever it is
//   registered, and this one keeps no page but /offline, so there is nothing to keep away from /staff.
// - Feature-detected, after "load" (it never competes with the page on a slow connection); a failure only
//   means no offline page. <html data-sw="controlled"> once the worker controls the page.
// - The last wallet balance this browser showed ([data-balance-kobo] on the customer's own balance) is
//   remembered for the offline page, and forgotten on log-out and on any page shown signed out, so a shared
//   phone never shows it to the next person.
var LAST_BALANCE_KEY = "vtu:last-balance";

function markControlled() {
  if (navigator.serviceWorker && navigator.serviceWorker.controller) {
    document.documentElement.setAttribute("data-sw", "controlled");
  }
}

if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* no offline page */ });
  });
  navigator.serviceWorker.addEventListener("controllerchange", markControlled);
  markControlled();
}

function storage(name) {
  try { return window[name]; } catch (e) { return null; }  // blocked storage throws on access
}

function rememberBalance() {
  var element = document.querySelector("[data-balance-kobo]");
  var store = storage("localStorage");
  if (!element || !store) return;
  var kobo = element.getAttribute("data-balance-kobo");
  if (!/^\d{1,15}$/.test(kobo)) return;
  try {
    store.setItem(LAST_BALANCE_KEY, JSON.stringify({ kobo: Number(kobo), at: Date.now() }));
  } catch (e) { /* storage full or blocked */ }
}

function forgetBalance() {
  var local = storage("localStorage");
  var session = storage("sessionStorage");
  try {
    if (local) local.removeItem(LAST_BALANCE_KEY);
    if (session) session.removeItem("htmx-history-cache");  // htmx's snapshots of pages seen in this tab
  } catch (e) { /* blocked */ }
}

function formatKobo(kobo) {
  var naira = String(Math.floor(kobo / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return "\u20a6" + naira + "." + String(kobo % 100).padStart(2, "0");
}

function showLastBalance() {
  var box = document.getElementById("last-balance");
  var store = storage("localStorage");
  if (!box || !store) return;
  var saved = null;
  try { saved = JSON.parse(store.getItem(LAST_BALANCE_KEY) || "null"); } catch (e) { saved = null; }
  if (!saved || typeof saved.kobo !== "number" || typeof saved.at !== "number") return;
  box.querySelector("[data-last-balance-amount]").textContent = formatKobo(saved.kobo);
  box.querySelector("[data-last-balance-time]").textContent = new Date(saved.at).toLocaleString("en-NG", {
    timeZone: "Africa/Lagos", day: "numeric", month: "short", hour: "numeric", minute: "2-digit", hour12: true
  });
  box.hidden = false;
}

if (document.body.hasAttribute("data-offline-page")) {
  showLastBalance();
} else if (document.querySelector("form[action='/logout']")) {
  rememberBalance();
} else {
  forgetBalance();  // a page shown signed out (log-in, sign-up, landing): nobody's balance stays behind
}
document.addEventListener("htmx:afterSettle", function () {
  if (document.querySelector("form[action='/logout']")) rememberBalance();
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.matches && form.matches("form[action='/logout']")) forgetBalance();
});
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-retry]")) window.location.reload();
});

// Buy forms with network detection (form[data-detect]): GET <form>/network answers the note under the phone
// field with data-detected = the number's network (the prefix table is the server's, app/vtu/networks.py).
// It is picked for the customer unless they chose a network by hand (a real tap, or a form the server marked
// data-network-manual): a ported number keeps its old prefix, so their choice always wins. The synthetic
// change event lets htmx load that network's plans and re-price, as a tap would.
document.addEventListener("change", function (event) {
  var input = event.target;
  if (!event.isTrusted || input.name !== "service_id" || !input.form) return;
  if (input.form.hasAttribute("data-detect")) input.form.setAttribute("data-network-manual", "");
});
document.addEventListener("htmx:load", function (event) {
  var note = event.detail && event.detail.elt;
  if (!note || !note.hasAttribute || !note.hasAttribute("data-detected")) return;
  var form = note.closest("form[data-detect]");
  if (!form || form.hasAttribute("data-network-manual")) return;
  var value = note.getAttribute("data-detected");
  var radio = Array.prototype.find.call(form.elements, function (elt) {
    return elt.name === "service_id" && elt.value === value;
  });
  if (!radio || radio.checked) return;
  radio.checked = true;
  radio.dispatchEvent(new Event("change", { bubbles: true }));
});

// The price block (#pay, "change from:#buy-form") re-renders the Pay button. A change in a field the price
// does not depend on (the PIN, the first-PIN and password fields, "save this number") must not: on a phone,
// leaving such a field by tapping Pay swapped the button away between touchstart and click, and the tap
// was lost. Only the fields listed in its hx-params re-price (a filter in hx-trigger would need eval).
document.addEventListener("htmx:confirm", function (event) {
  var elt = event.detail && event.detail.elt;
  var trigger = event.detail && event.detail.triggeringEvent;
  if (!elt || elt.id !== "pay" || !trigger || trigger.type !== "change") return;
  var names = (elt.getAttribute("hx-params") || "").split(",");
  var source = trigger.target;
  if (source && source.name && names.indexOf(source.name) === -1) event.preventDefault();
});

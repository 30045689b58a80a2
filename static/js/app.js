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

// The service worker, served at /sw.js by app/core/pwa.py, which puts `const SHELL = {...}` (the cache
// name and the precache list: fingerprinted static URLs and /offline) in front of this file, so every deploy
// that changes an asset or the offline page is a new worker with a new cache (docs/architecture.md, "The
// installable app").
//
// What goes into Cache Storage: SHELL.urls and nothing else. No page but /offline, no API or JSON answer,
// no htmx partial, no POST: a wallet balance, a receipt or a statement is only ever shown fresh from the
// server (or, offline, the offline page with the last balance the browser itself remembered).
"use strict";

var PRECACHED = new Set(SHELL.urls);

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL.cache).then(function (cache) {
      // Straight from the server (not the HTTP cache) and without cookies: /offline is the same page for
      // everyone and carries nothing of the signed-in user.
      return cache.addAll(SHELL.urls.map(function (url) {
        return new Request(url, { cache: "reload", credentials: "omit" });
      }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) { return name !== SHELL.cache; })
        .map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function offlinePage() {
  return caches.open(SHELL.cache).then(function (cache) { return cache.match(SHELL.offline); })
    .then(function (page) { return page || Response.error(); });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;  // POSTs (purchases, log-out) always go to the network as they are
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    // Network first, and the answer is never stored. The offline page only when there is no answer at
    // all (an error page from the server is shown as it is).
    event.respondWith(fetch(request).catch(offlinePage));
    return;
  }
  if (PRECACHED.has(url.pathname) && url.search === "") {
    // Fingerprinted assets never change under their URL: cache first.
    event.respondWith(
      caches.open(SHELL.cache).then(function (cache) { return cache.match(request); })
        .then(function (hit) { return hit || fetch(request); })
    );
  }
  // Everything else (htmx partials, /api/*, other files): the browser's own handling, nothing stored.
});

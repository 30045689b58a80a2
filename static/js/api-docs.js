// Swagger UI for /api/docs (a file, not an inline script: the site's CSP allows scripts from this site only).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    tryItOutEnabled: false
  });
});

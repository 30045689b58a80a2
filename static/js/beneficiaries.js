// Recent and saved recipients on the buy forms (templates/vtu/partials/beneficiaries.html). Each is a link
// that re-opens the form prefilled; here a tap fills the form in place instead, keeping what was typed:
// the recipient field, the network / disco / TV provider (a radio or a select; "change" is dispatched so
// htmx loads that provider's plans) and the meter type. Loaded from the partial, so only on buy forms.
(function () {
  function setChoice(form, name, value) {
    var field = form.elements.namedItem(name);
    if (!field) return false;
    if (field.tagName === "SELECT" || field.tagName === "INPUT") {
      if (field.type === "radio") {
        field.checked = field.value === value;
        if (field.checked) field.dispatchEvent(new Event("change", { bubbles: true }));
        return field.checked;
      }
      if (field.value === value) return true;
      field.value = value;
      field.dispatchEvent(new Event("change", { bubbles: true }));
      return true;
    }
    // a group of radios (RadioNodeList)
    for (var i = 0; i < field.length; i++) {
      if (field[i].value === value) {
        if (!field[i].checked) {
          field[i].checked = true;
          field[i].dispatchEvent(new Event("change", { bubbles: true }));
        }
        return true;
      }
    }
    return false;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-beneficiary]");
    if (!link) return;
    var form = link.closest("form");
    var fill;
    try { fill = JSON.parse(link.getAttribute("data-beneficiary")); } catch (e) { return; }
    if (!form || !fill) return;  // the link then opens the prefilled form
    event.preventDefault();
    // The provider first: a changed provider reloads the plans and clears a verified meter / smartcard.
    ["service_id", "meter_type"].forEach(function (name) { if (fill[name]) setChoice(form, name, fill[name]); });
    Object.keys(fill).forEach(function (name) {
      if (name === "service_id" || name === "meter_type") return;
      var input = form.elements.namedItem(name);
      if (input && input.tagName === "INPUT") { input.value = fill[name]; }
    });
    var customer = form.querySelector("#customer");
    if (customer) customer.replaceChildren();  // a verification shown was for another number
    form.querySelectorAll("a[data-beneficiary]").forEach(function (other) {
      other.setAttribute("aria-pressed", other === link ? "true" : "false");
    });
  });
})();

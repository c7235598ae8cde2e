// Behaviour of every page (no dependencies; CSP allows our own scripts only):
// the collapsible navigation, confirmations, a Tab trap in modal dialogs, and leaving a
// claimed item (its claim is released when the page goes away).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Navigation: on narrow screens the "Menu" button shows and hides it.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-menu-toggle]");
    if (!toggle) return;
    var bar = toggle.closest("[data-topbar]");
    var open = !bar.classList.contains("open");
    bar.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = bar.querySelector(".nav a");
      if (first) first.focus();
    }
  });

  // Forms that change something hard to undo ask first: <form data-confirm="Rotate the secret?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Forms that come back to the same page (<form data-keep-place>, e.g. adjudications) keep the
  // reader's place instead of landing at the top after the reload.
  var PLACE = "trustladder.place";
  document.addEventListener("submit", function (event) {
    if (!event.defaultPrevented && event.target.hasAttribute && event.target.hasAttribute("data-keep-place")) {
      try { sessionStorage.setItem(PLACE, JSON.stringify({ path: location.pathname, y: window.scrollY })); } catch (e) { /* private mode */ }
    }
  });
  function restorePlace() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(PLACE) || "null"); sessionStorage.removeItem(PLACE); } catch (e) { return; }
    if (saved && saved.path === location.pathname) window.scrollTo(0, saved.y);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restorePlace);
  else restorePlace();

  // Leaving an item you hold a claim on (j/k, a link, the tab closing) gives the claim back, so
  // nobody sees "… is on it" for an item no one looks at. Not when you leave by deciding it or
  // by "Review next" (those move the claim on themselves): a form that navigates says so first.
  var leavingByForm = false;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.closest) return;  // htmx forms do not navigate
    if (form.closest("[data-action-detail], [data-confirm-edit]") || form.hasAttribute("data-claim-next") ||
        form.closest("[data-my-claim]")) leavingByForm = true;
  });
  window.addEventListener("pagehide", function () {
    var panel = document.querySelector("[data-action-detail][data-release-url]");
    if (leavingByForm || !panel || !navigator.sendBeacon) return;
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    var data = new FormData();
    if (token) data.append("csrfmiddlewaretoken", token.value);
    data.append("quiet", "1");
    navigator.sendBeacon(panel.getAttribute("data-release-url"), data);
  });
  window.addEventListener("pageshow", function () { leavingByForm = false; });

  // A modal dialog keeps Tab inside itself (the browser would let it reach the address bar).
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex]:not([tabindex='-1'])";
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    var dialog = document.querySelector("dialog[open]");
    if (!dialog) return;
    var items = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return el.offsetParent !== null;
    });
    if (!items.length) { event.preventDefault(); return; }
    var first = items[0], last = items[items.length - 1];
    var inside = dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      last.focus(); event.preventDefault();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      first.focus(); event.preventDefault();
    }
  });
})();

// Keyboard shortcuts for the review queues and the action page (no dependencies).
// Queue:  j/k select, Enter/o open, n claim next, a/r/e open the item ready to decide.
// Action: j/k next/previous item, a approve, r reject, e escalate (focus the reason; Enter sends).
// Everywhere: ? shows the shortcuts, Esc leaves a text field or closes the help.
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-queue-rows] tr[data-id]"));
  }

  var selectedId = null;

  function select(index) {
    var all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (tr) { tr.classList.remove("selected"); tr.removeAttribute("aria-selected"); });
    var tr = all[index];
    tr.classList.add("selected");
    tr.setAttribute("aria-selected", "true");
    tr.scrollIntoView({ block: "nearest" });
    selectedId = tr.getAttribute("data-id");
  }

  function selectedIndex() {
    var all = rows();
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-id") === selectedId) return i;
    }
    return -1;
  }

  function focusReason(id) {
    var input = document.getElementById(id);
    if (input) { input.focus(); input.select(); return true; }
    return false;
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }

  function toggleHelp() {
    var dialog = document.getElementById("shortcuts");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function onQueue(key) {
    var index = selectedIndex();
    var current = index >= 0 ? rows()[index] : null;
    switch (key) {
      case "j": select(index + 1); return true;
      case "k": select(index < 0 ? 0 : index - 1); return true;
      case "n": {
        var form = document.querySelector("form[data-claim-next]");
        if (form) { form.submit(); return true; }
        return false;
      }
      case "Enter": case "o":
        if (current) { window.location.href = current.getAttribute("data-action-url"); return true; }
        return false;
      case "a": case "r": case "e":
        if (current) {
          var target = { a: "#approve", r: "#reject", e: "#escalate" }[key];
          window.location.href = current.getAttribute("data-action-url") + target;
          return true;
        }
        return false;
    }
    return false;
  }

  function onDetail(key) {
    switch (key) {
      case "j": return click("[data-action-detail] [data-next]");
      case "k": return click("[data-action-detail] [data-prev]");
      case "a": return click("[data-action-detail] #approve-button");
      case "r": return focusReason("reject-reason");
      case "e": return focusReason("escalate-reason");
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (event.key === "Escape") {
      if (typing(target)) target.blur();
      return;
    }
    if (typing(target)) return;
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    var handled = false;
    if (document.querySelector("[data-queue-rows]")) handled = onQueue(event.key);
    else if (document.querySelector("[data-action-detail]")) handled = onDetail(event.key);
    if (handled) event.preventDefault();
  });

  // Arriving from the queue with a/r/e: be ready to decide.
  function arrive() {
    var hash = window.location.hash;
    if (hash === "#reject") focusReason("reject-reason");
    else if (hash === "#escalate") focusReason("escalate-reason");
    else if (hash === "#approve") {
      var button = document.getElementById("approve-button");
      if (button) button.focus();
    }
  }

  // Live updates replace the rows: keep the selection on the same item when it is still there.
  // After a decision the next item is shown: start it with no field focused. Blurring before
  // the swap stops htmx from putting the focus back into the same-id reason field.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.status < 300 && typing(active) && active.closest("[data-action-detail]")) active.blur();
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (selectedId === null) return;
    var index = selectedIndex();
    if (index >= 0) select(index);
  });

  function ready() {
    arrive();
    document.body.setAttribute("data-keys-ready", "");  // tests wait for this before typing
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();

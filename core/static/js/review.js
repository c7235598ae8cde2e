// Keyboard shortcuts for the review queues and the action page (no dependencies).
// The help dialog (`?`, partials/shortcuts.html) lists the keys of the page; targets are found
// by data-shortcut attributes, never by ids that mean something else on another page.
// Queue:  j/k select (focus moves to the row's link), Enter/o open, n review next, a/r/e open
//         the item ready to decide.
// Item:   j/k next/previous item, n/Enter review next, a approve (or "correct"), r reject,
//         e escalate, p edit the payload.
// After every htmx swap of the item panel: the tab title follows the item, and the focus moves
// to the new heading (or to the field an error is about).
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-queue-rows] tr[data-id]"));
  }

  var selectedId = null;

  function select(index, focus) {
    var all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (tr) { tr.classList.remove("selected"); });
    var tr = all[index];
    tr.classList.add("selected");
    tr.scrollIntoView({ block: "nearest" });
    selectedId = tr.getAttribute("data-id");
    // Focus moves to the row's link, so screen readers announce the selection.
    var link = tr.querySelector("[data-row-link]");
    if (link && focus !== false) link.focus();
  }

  function selectedIndex() {
    var all = rows();
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-id") === selectedId) return i;
    }
    return -1;
  }

  function shortcut(name) {
    var scope = document.querySelector("[data-action-detail]") || document;
    return scope.querySelector('[data-shortcut="' + name + '"]');
  }

  function usable(el) {
    return el && !el.disabled && !el.closest("fieldset[disabled]");
  }

  function focusField(name) {
    var input = shortcut(name);
    if (usable(input)) { input.focus(); if (input.select) input.select(); return true; }
    return false;
  }

  function click(name) {
    var el = shortcut(name);
    if (usable(el)) { el.click(); return true; }
    return false;
  }

  function claimNext() {
    var form = document.querySelector("form[data-claim-next]");
    if (form) { if (form.requestSubmit) form.requestSubmit(); else form.submit(); return true; }
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
      case "n": return claimNext();
      case "Enter": case "o":
        if (current) { window.location.href = current.getAttribute("data-action-url"); return true; }
        return false;
      case "a": case "r": case "e":
        if (current) {
          window.location.href = current.getAttribute("data-action-url") + "#" + { a: "approve", r: "reject", e: "escalate" }[key];
          return true;
        }
        return false;
    }
    return false;
  }

  function editPayload() {
    var details = document.querySelector("[data-action-detail] details[data-edit]");
    if (!details) return false;
    details.open = true;
    return focusField("edit");
  }

  function noEscalation() {
    var note = document.querySelector("[data-action-detail] [data-no-escalate]");
    if (!note) return false;
    note.setAttribute("tabindex", "-1");
    note.setAttribute("role", "status");
    note.focus();
    return true;
  }

  function onDetail(key) {
    switch (key) {
      case "j": return click("next");
      case "k": return click("prev");
      case "n": case "Enter": return claimNext();
      case "a": return click("approve");
      case "r": return focusField("reject");
      case "e": return focusField("escalate") || noEscalation();
      case "p": return editPayload();
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (event.key === "Escape") {
      if (typing(target)) target.blur();
      else if (document.querySelector("[data-confirm-edit]") && !document.querySelector("dialog[open]")) {
        var cancel = document.querySelector("[data-confirm-edit] a[href]");
        if (cancel) cancel.click();
      }
      return;
    }
    if (typing(target)) return;
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (document.querySelector("dialog[open]")) return;
    // Enter on a link or a button keeps its own meaning.
    if (event.key === "Enter" && target && target.closest && target.closest("a[href], button, summary")) return;
    var handled = false;
    if (document.querySelector("[data-queue-rows]")) handled = onQueue(event.key);
    else if (document.querySelector("[data-action-detail]")) handled = onDetail(event.key);
    if (handled) event.preventDefault();
  });

  // Arriving from the queue with a/r/e: be ready to decide.
  function arrive() {
    var hash = window.location.hash;
    if (hash === "#reject") focusField("reject");
    else if (hash === "#escalate") focusField("escalate") || noEscalation();
    else if (hash === "#approve") {
      var button = shortcut("approve");
      if (button) button.focus();
    } else {
      var first = document.querySelector("[data-focus-first]");
      if (first) {
        var details = first.closest("details");
        if (details) details.open = true;
        first.focus();
      }
    }
  }

  // After a decision the next item is shown: start it with no field focused. Blurring before
  // the swap stops htmx from putting the focus back into the same-id reason field.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    var xhr = event.detail && event.detail.xhr;
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "action-panel") return;  // nav counts, the state line: leave the focus be
    if (xhr && xhr.status < 300 && typing(active) && active.closest("[data-action-detail]")) active.blur();
  });

  // The live state region (polled) closed or reopened the item: buttons follow it.
  function applyState() {
    var region = document.querySelector("[data-item-state]");
    if (!region) return;
    var closed = region.getAttribute("data-open") !== "true";
    var active = document.activeElement;
    document.querySelectorAll("[data-decide-controls]").forEach(function (fieldset) {
      fieldset.disabled = closed;
    });
    if (closed && (!active || active === document.body || (active.closest && active.closest("[data-decide-controls]")))) {
      var text = region.querySelector("[data-state-text]");
      if (text) { text.setAttribute("tabindex", "-1"); text.focus(); }
    }
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var detail = event.detail || {};
    var path = (detail.pathInfo && detail.pathInfo.requestPath) || "";
    if (/[?&]part=state/.test(path)) { applyState(); return; }
    var elt = detail.elt;
    var panel = document.getElementById("action-panel");
    if (panel && elt && elt.closest && elt.closest("[data-action-detail], [data-confirm-edit]")) {
      // The item panel was swapped: the tab title and the focus follow the new content.
      var title = panel.getAttribute("data-title");
      if (title) document.title = title;
      var first = panel.querySelector("[data-focus-first]");
      if (first) {
        var details = first.closest("details");
        if (details) details.open = true;
        first.focus();
      } else {
        var heading = panel.querySelector("h1");
        if (heading) heading.focus();
      }
      return;
    }
    // Live updates replace the rows: keep the selection on the same item when it is still there.
    if (selectedId === null) return;
    var index = selectedIndex();
    if (index >= 0) select(index, false);
  });

  function ready() {
    arrive();
    document.body.setAttribute("data-keys-ready", "");  // tests wait for this before typing
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();

/* Keyboard shortcuts of the review workspace (reviews.workspace_views).

   Queue:  j / n next row, k previous row, o or Enter open it, x select it for bulk approval.
   Case:   j / n next case, k previous case, q back to the queue, c claim, a approve,
           r reject and e escalate (each focuses its required note; Enter submits it, the
           browser and the server refuse an empty one), Esc leaves a note field.
   Keys typed into a field are the field's own, except Enter (submit) and Esc. Everything
   the keys do is also a plain link or button on the page. */
(function () {
  "use strict";

  function typing(target) {
    if (!target) return false;
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function go(url) {
    if (url) window.location.assign(url);
  }

  function submitForm(form) {
    if (!form) return;
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  }

  function queue(root) {
    var rows = Array.prototype.slice.call(root.querySelectorAll("#review-queue tbody tr[data-url]"));
    var at = -1;
    function move(step) {
      if (!rows.length) return;
      if (at >= 0) rows[at].classList.remove("cursor");
      at = at < 0 ? 0 : Math.min(Math.max(at + step, 0), rows.length - 1);
      rows[at].classList.add("cursor");
      rows[at].scrollIntoView({ block: "nearest" });
    }
    return function (event) {
      var key = event.key;
      if (key === "j" || key === "n") move(1);
      else if (key === "k") move(-1);
      else if ((key === "o" || key === "Enter") && at >= 0) go(rows[at].dataset.url);
      else if (key === "x" && at >= 0) {
        var box = rows[at].querySelector("input[type=checkbox]");
        if (box) box.checked = !box.checked;
      } else return false;
      return true;
    };
  }

  function casePage(root) {
    function note(formId) {
      var form = document.getElementById(formId);
      var field = form && form.querySelector("textarea");
      if (field) {
        field.focus();
        return true;
      }
      return false;
    }
    return function (event) {
      var key = event.key;
      if (key === "j" || key === "n") go(root.dataset.nextUrl);
      else if (key === "k") go(root.dataset.prevUrl);
      else if (key === "q") go(root.dataset.queueUrl);
      else if (key === "a") submitForm(document.getElementById("approve-form"));
      else if (key === "c") {
        var claim = document.querySelector("#claim-form button");
        if (claim) claim.click();
      } else if (key === "r") return note("reject-form");
      else if (key === "e") return note("escalate-form");
      else return false;
      return true;
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector(".workspace[data-page]");
    if (!root) return;
    var handle = root.dataset.page === "queue" ? queue(root) : casePage(root);
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var target = event.target;
      if (typing(target)) {
        if (event.key === "Escape") target.blur();
        else if (event.key === "Enter" && target.tagName.toLowerCase() === "textarea" && !event.shiftKey) {
          // Enter submits the note's form (Shift+Enter for a new line); an empty required
          // note is refused by the browser's validation, and by the server.
          event.preventDefault();
          submitForm(target.form);
        }
        return;
      }
      if (handle(event)) event.preventDefault();
    });
  });
})();

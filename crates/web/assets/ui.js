// alertbook: refreshes the live part of a page (the element with
// data-refresh="SECONDS") in place, without reloading the page, so the
// filters, the scroll position and keyboard focus stay where they are.
// Everything works without it: the page has a "Refresh now" link.
(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  var seconds = live ? Number(live.getAttribute("data-refresh")) : 0;
  if (!live || !(seconds > 0) || !window.fetch || !window.DOMParser) {
    return;
  }
  var status = document.getElementById("refresh-status");
  var bar = status ? status.parentNode : null;
  var toggle = document.createElement("input");
  toggle.type = "checkbox";
  toggle.id = "auto-refresh";
  toggle.checked = true;
  var label = document.createElement("label");
  label.htmlFor = "auto-refresh";
  label.appendChild(toggle);
  label.appendChild(document.createTextNode(" Refresh every " + seconds + " s"));
  if (bar) {
    bar.insertBefore(label, status);
  }
  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }
  function refresh() {
    // Skip a round while hidden, switched off, or while focus is inside the
    // live region (replacing it would move the focus).
    if (document.hidden || !toggle.checked || live.contains(document.activeElement)) {
      return;
    }
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.querySelector("[data-refresh]");
        if (!fresh) {
          throw new Error("no live region in the answer");
        }
        live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
        document.title = page.title;
        say("Updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say("Refresh failed (" + error.message + "); retrying in " + seconds + " s");
      });
  }
  window.setInterval(refresh, seconds * 1000);
})();

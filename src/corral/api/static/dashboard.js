// The dashboard's few scripts, all optional: every form works without them.
// - confirmation before submits whose button says data-confirm;
// - live logs over server-sent events, with source and dyno filters;
// - status, dynos and releases refreshing themselves every few seconds;
// - config values fetched only when revealed, and an edit shortcut;
// - copy buttons on command lines.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    const button = event.submitter;
    const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // -- live logs ------------------------------------------------------------------------
  const panel = document.getElementById("log-panel");
  const status = document.getElementById("log-status");
  const MAX_LINES = 2000;
  const BACKLOG = 100;
  let source = null;

  function setStatus(text, style) {
    if (status) {
      status.textContent = text;
      status.className = "badge " + style;
    }
  }

  function filters() {
    const chosen = {};
    for (const name of ["source", "dyno"]) {
      const select = document.getElementById("log-" + name);
      if (select && select.value) {
        chosen[name] = select.value;
      }
    }
    return chosen;
  }

  function append(text) {
    const atEnd = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 40;
    const line = document.createElement("div");
    line.className = "log-line";
    line.textContent = text;
    panel.appendChild(line);
    while (panel.childElementCount > MAX_LINES) {
      panel.firstElementChild.remove();
    }
    if (atEnd) {
      panel.scrollTop = panel.scrollHeight;
    }
  }

  function connect(params) {
    if (source) {
      source.close();
    }
    const url = new URL(panel.dataset.stream, window.location.href);
    for (const [name, value] of Object.entries(params)) {
      url.searchParams.set(name, value);
    }
    setStatus("connecting", "text-bg-secondary");
    source = new EventSource(url);
    source.onopen = function () {
      setStatus("live", "text-bg-success");
    };
    source.onerror = function () {
      setStatus("reconnecting", "text-bg-warning");
    };
    source.onmessage = function (event) {
      append(event.data);
    };
  }

  if (panel && window.EventSource) {
    panel.scrollTop = panel.scrollHeight;
    const first = filters();
    if (panel.dataset.since) {
      first.since = panel.dataset.since;
    }
    connect(first);
    for (const name of ["source", "dyno"]) {
      const select = document.getElementById("log-" + name);
      if (!select) {
        continue;
      }
      select.addEventListener("change", function () {
        const chosen = filters();
        const page = new URL(window.location.href);
        page.searchParams.delete("source");
        page.searchParams.delete("dyno");
        for (const [key, value] of Object.entries(chosen)) {
          page.searchParams.set(key, value);
        }
        window.history.replaceState(null, "", page);
        panel.replaceChildren();
        connect(Object.assign({ backlog: String(BACKLOG) }, chosen));
      });
    }
  }

  // -- parts that change by themselves ----------------------------------------------------
  // The page names a URL (data-live-url) whose answer holds fresh copies of the page's
  // [data-live] elements, matched by id; one the user is working in is left alone.
  const liveUrl = document.querySelector("[data-live-url]");
  if (liveUrl && window.fetch && window.DOMParser) {
    window.setInterval(async function () {
      if (document.visibilityState !== "visible") {
        return;
      }
      let fresh;
      try {
        const response = await fetch(liveUrl.dataset.liveUrl, { credentials: "same-origin" });
        if (!response.ok) {
          return;
        }
        fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      } catch (error) {
        return; // the server is restarting: keep what is shown and try again next time
      }
      for (const region of document.querySelectorAll("[data-live]")) {
        const copy = fresh.getElementById(region.id);
        if (copy && !region.contains(document.activeElement)) {
          region.innerHTML = copy.innerHTML;
        }
      }
    }, 3000);
  }

  // -- config vars ----------------------------------------------------------------------
  document.addEventListener("click", async function (event) {
    const reveal = event.target.closest("button.reveal");
    if (reveal) {
      const value = reveal.closest("tr").querySelector(".config-value");
      if (reveal.getAttribute("aria-pressed") === "true") {
        value.textContent = "••••••••";
        reveal.setAttribute("aria-pressed", "false");
        reveal.firstChild.textContent = "Reveal";
        return;
      }
      const response = await fetch(value.dataset.url, { credentials: "same-origin" });
      if (!response.ok) {
        value.textContent = "could not load the value; reload the page";
        return;
      }
      value.textContent = (await response.json()).value;
      reveal.setAttribute("aria-pressed", "true");
      reveal.firstChild.textContent = "Hide";
      return;
    }
    const edit = event.target.closest("button.edit");
    if (edit) {
      document.getElementById("config-key").value = edit.dataset.key;
      const input = document.getElementById("config-value");
      input.value = "";
      input.focus();
      return;
    }
    const copy = event.target.closest("button.copy");
    if (copy) {
      const text = copy.parentElement.querySelector("code").textContent;
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    }
  });

  if (navigator.clipboard) {
    for (const block of document.querySelectorAll(".copyable")) {
      const wrapper = document.createElement("div");
      wrapper.className = "position-relative copyable-wrap";
      block.replaceWith(wrapper);
      wrapper.appendChild(block);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm btn-light copy position-absolute top-0 end-0 m-1";
      button.textContent = "Copy";
      wrapper.appendChild(button);
    }
  }
})();

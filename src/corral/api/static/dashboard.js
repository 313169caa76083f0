// Live logs on the app page: follows the server-sent events of new log lines
// and appends each one to the panel, keeping it scrolled to the end.
(function () {
  "use strict";
  const panel = document.getElementById("log-panel");
  const status = document.getElementById("log-status");
  if (!panel || !window.EventSource) {
    return;
  }
  const MAX_LINES = 2000;

  function setStatus(text, style) {
    if (status) {
      status.textContent = text;
      status.className = "badge " + style;
    }
  }

  const url = new URL(panel.dataset.stream, window.location.href);
  if (panel.dataset.since) {
    url.searchParams.set("since", panel.dataset.since);
  }
  panel.scrollTop = panel.scrollHeight;
  const source = new EventSource(url);

  source.onopen = function () {
    setStatus("live", "text-bg-success");
  };
  source.onerror = function () {
    setStatus("reconnecting", "text-bg-warning");
  };
  source.onmessage = function (event) {
    const atEnd = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 40;
    const line = document.createElement("div");
    line.className = "log-line";
    line.textContent = event.data;
    panel.appendChild(line);
    while (panel.childElementCount > MAX_LINES) {
      panel.firstElementChild.remove();
    }
    if (atEnd) {
      panel.scrollTop = panel.scrollHeight;
    }
  };
})();

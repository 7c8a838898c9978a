// The console's behaviour: live parts that pause, charts, confirmations, sign-in links.
// No inline scripts (the page's CSP forbids them) and no eval (htmx allowEval is off).
(function () {
  "use strict";
  var live = true;

  function liveOn() {
    var box = document.getElementById("live");
    return live && (!box || box.checked) && document.visibilityState === "visible";
  }

  // A live fragment's poll is skipped while live is off or the tab is hidden, and
  // stops for good once the task it shows has ended.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var el = e.detail.elt;
    if (el && el.hasAttribute && el.hasAttribute("data-live") && !liveOn()) e.preventDefault();
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    var el = e.detail.target;
    charts(el);
    if (el && el.id === "task-live" && el.querySelector("#task-state")) {
      var state = el.querySelector("#task-state").textContent;
      if (["succeeded", "dead", "cancelled", "expired"].indexOf(state) >= 0) {
        el.removeAttribute("hx-trigger");
        el.removeAttribute("data-live");
        if (window.htmx) htmx.process(el);
      }
    }
    var box = document.getElementById("log-box");
    if (box && box.contains(el)) box.scrollTop = box.scrollHeight;
  });

  // Forms that ask first.
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  }, true);
  document.addEventListener("htmx:confirm", function (e) {
    var form = e.detail.elt.closest && e.detail.elt.closest("[data-confirm]");
    if (!form) return;
    e.preventDefault();
    if (window.confirm(form.getAttribute("data-confirm"))) e.detail.issueRequest(true);
  });

  // The admin's tenant picker switches on change.
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute("data-autosubmit")) e.target.form.submit();
    if (e.target.hasAttribute("data-log-filter")) reloadLogs();
  });
  document.addEventListener("input", function (e) {
    if (e.target.hasAttribute("data-log-filter")) {
      clearTimeout(reloadLogs.timer);
      reloadLogs.timer = setTimeout(reloadLogs, 300);
    }
  });

  function reloadLogs() {
    var box = document.getElementById("log-box");
    var form = document.querySelector(".log-filter");
    if (!box || !form) return;
    var params = new URLSearchParams();
    form.querySelectorAll("[data-log-filter]").forEach(function (f) { if (f.value) params.set(f.name, f.value); });
    var path = form.getAttribute("action") + "/logs?" + params.toString();
    box.innerHTML = "";
    var start = document.createElement("div");
    start.setAttribute("hx-get", path);
    start.setAttribute("hx-trigger", "load");
    start.setAttribute("hx-swap", "outerHTML");
    box.appendChild(start);
    htmx.process(start);
  }

  // A sign-in link carries the key after '#': never sent to a server or written to a log.
  function signInFromLink() {
    var form = document.getElementById("signin");
    var m = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
    if (!form || !m) return;
    form.querySelector("#key").value = decodeURIComponent(m[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    // Signed in already: the visitor decides (a link from elsewhere must not swap the
    // session for another tenant's without a click).
    if (form.hasAttribute("data-signed-in")) {
      form.querySelector("button").focus();
      return;
    }
    form.submit();
  }

  // Charts: uPlot over the JSON the page carries.
  function size(el) {
    return { width: Math.max(240, el.clientWidth || 320), height: el.classList.contains("small") ? 60 : 160 };
  }
  function draw(el, data, series) {
    el.innerHTML = "";
    if (!window.uPlot || !data[0] || data[0].length === 0) {
      el.textContent = "No data yet.";
      return;
    }
    var opts = Object.assign(size(el), { series: [{}].concat(series),
      legend: { show: !el.classList.contains("small"), live: false }, axes: [{}, { size: 50 }] });
    new uPlot(opts, data, el);
  }
  function charts(root) {
    root = root || document;
    var block = root.querySelector ? root.querySelector("script.series") : null;
    if (block) {
      var s = JSON.parse(block.textContent);
      root.querySelectorAll("[data-chart]").forEach(function (el) {
        var kind = el.getAttribute("data-chart");
        if (kind === "throughput") draw(el, [s.t, s.submitted, s.succeeded], [
          { label: "submitted", stroke: "#2563eb", width: 2 }, { label: "succeeded", stroke: "#15803d", width: 2, dash: [6, 3] }]);
        if (kind === "failures") draw(el, [s.t, s.failed, s.dead], [
          { label: "failed attempts", stroke: "#b45309", width: 2 }, { label: "dead", stroke: "#b91c1c", width: 2, dash: [6, 3] }]);
        if (kind === "latency") draw(el, [s.t, s.wait_ms], [{ label: "ms", stroke: "#7c3aed", width: 2, points: { show: true, size: 5 } }]);
      });
    }
    var aimd = root.querySelector ? root.querySelector("script.aimd-series") : null;
    if (aimd) {
      var a = JSON.parse(aimd.textContent);
      root.querySelectorAll("[data-chart=aimd]").forEach(function (el) {
        var d = a[el.getAttribute("data-key")];
        if (d) draw(el, [d.t, d.limit, d.inflight], [{ label: "limit", stroke: "#2563eb", width: 2 }, { label: "in flight", stroke: "#15803d", dash: [4, 2] }]);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("live");
    if (box) {
      box.checked = localStorage.getItem("sluice-live") !== "off";
      box.addEventListener("change", function () { localStorage.setItem("sluice-live", box.checked ? "on" : "off"); });
    }
    signInFromLink();
    charts(document);
  });
})();

// The console works without this file; with it, progress bars of running issues update in
// place from the run's JSON twin every few seconds. No third-party code.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh"), 10) || 3;

  function minutes(eta) {
    if (eta === null) return "—";
    if (eta === 0) return "done";
    return Math.floor(eta / 60) + " min " + (eta % 60) + " s";
  }

  function refresh(box) {
    var id = box.getAttribute("data-run");
    fetch("/admin/runs/" + id + ".json", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || !data.progress) return;
        var p = data.progress;
        var bar = box.querySelector("progress");
        bar.value = p.percent;
        bar.setAttribute("aria-label", "Run " + id + ": " + p.percent + " % settled");
        box.querySelector(".percent").textContent = p.percent;
        box.querySelector(".done").textContent = p.done.toLocaleString("en");
        box.querySelector(".total").textContent = p.total.toLocaleString("en");
        box.querySelector(".rate").textContent = p.per_minute.toLocaleString("en");
        box.querySelector(".eta").textContent = minutes(p.eta_seconds);
        box.querySelector(".status").textContent = p.status;
        var live = ["building", "ready", "sending"].indexOf(p.status) >= 0;
        box.setAttribute("data-live", live ? "yes" : "no");
      })
      .catch(function () {});
  }

  function tick() {
    var boxes = document.querySelectorAll(".progress[data-live=yes]");
    for (var i = 0; i < boxes.length; i++) refresh(boxes[i]);
  }

  if (document.querySelector(".progress")) {
    setInterval(tick, seconds * 1000);
  }
})();

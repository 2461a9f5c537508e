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

  // Background jobs (CSV imports): a box with data-job and data-url (the job's JSON twin)
  // shows {job: {percent, stage, done, total, status}}; when the job ends the page is
  // reloaded once to show its report. Without JS the page's meta refresh does the same.
  function refreshJob(box) {
    fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || !data.job) return;
        var j = data.job;
        var bar = box.querySelector("progress");
        bar.value = j.percent;
        bar.setAttribute("aria-label", "Job " + j.percent + " % done");
        box.querySelector(".percent").textContent = j.percent;
        box.querySelector(".stage").textContent = j.stage;
        box.querySelector(".done").textContent = j.done.toLocaleString("en");
        box.querySelector(".total").textContent = j.total.toLocaleString("en");
        box.querySelector(".status").textContent = j.status;
        if (j.status !== "running") {
          box.setAttribute("data-live", "no");
          window.location.reload();
        }
      })
      .catch(function () {});
  }

  if (document.querySelector(".job[data-job]")) {
    setInterval(function () {
      var boxes = document.querySelectorAll(".job[data-live=yes]");
      for (var i = 0; i < boxes.length; i++) refreshJob(boxes[i]);
    }, seconds * 1000);
  }
})();

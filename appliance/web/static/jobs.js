// The jobs dashboard, live: polls /console/jobs/live.json (same filters as the page) every few
// seconds and moves progress bars, states and counts in place. Without it the page still works.
(function () {
  "use strict";
  var counts = document.getElementById("job-counts");
  if (!counts || !window.fetch) { return; }
  var seconds = parseInt(counts.getAttribute("data-poll-seconds"), 10) || 3;
  var news = document.getElementById("jobs-news");
  var workersLine = document.getElementById("workers-line");

  function setText(row, field, text) {
    var cell = row.querySelector('[data-field="' + field + '"]');
    if (cell && cell.textContent !== text) { cell.textContent = text; }
    return cell;
  }

  function update(data) {
    var unseen = 0;
    data.jobs.forEach(function (job) {
      var row = document.getElementById("job-" + job.id);
      if (!row) { unseen += 1; return; }
      var bar = row.querySelector("progress");
      if (bar) { bar.value = job.progress; bar.textContent = job.progress + "%"; }
      setText(row, "progress", job.progress + "%");
      var state = setText(row, "state", job.state);
      if (state) { state.className = "state state-" + job.state; }
      setText(row, "attempts", job.attempts + " / " + job.max_attempts);
      setText(row, "last_error", job.last_error || "");
    });
    var totals = {};
    Object.keys(data.counts).forEach(function (stage) {
      Object.keys(data.counts[stage]).forEach(function (state) {
        totals[state] = (totals[state] || 0) + data.counts[stage][state];
      });
    });
    counts.querySelectorAll("[data-count]").forEach(function (cell) {
      var key = cell.getAttribute("data-count").split(":");
      var value = (data.counts[key[0]] || {})[key[1]] || 0;
      cell.textContent = String(value);
      cell.className = value ? "state-" + key[1] : "";
    });
    counts.querySelectorAll("[data-total]").forEach(function (cell) {
      cell.textContent = String(totals[cell.getAttribute("data-total")] || 0);
    });
    if (workersLine) { workersLine.setAttribute("data-live-workers", String(data.workers)); }
    if (news) {
      if (unseen > 0) {
        news.textContent = news.getAttribute("data-message");
        news.hidden = false;
      } else {
        news.hidden = true;
      }
    }
    document.body.setAttribute("data-jobs-polled", String(Date.now()));
  }

  function poll() {
    fetch("/console/jobs/live.json" + window.location.search.replace(/([?&])done=[^&]*&?/, "$1"), {
      credentials: "same-origin",
      keepalive: true,  // finishes even if the admin navigates away meanwhile (no aborted request)
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.json();
    }).then(update).catch(function () { /* keep the last figures; try again later */ })
      .then(function () { window.setTimeout(poll, seconds * 1000); });
  }
  window.setTimeout(poll, seconds * 1000);
}());

/* The transcript, synced to its recording: each word and each line's time seeks the player;
   while it plays, the current line and word are marked (aria-current). Without JavaScript the
   transcript reads as plain text beside a plain player. */
(function () {
  "use strict";
  var player = document.getElementById("player");
  var list = document.querySelector("ol.transcript");
  if (!player || !list) { return; }
  var parts = JSON.parse(player.getAttribute("data-parts") || "[]");
  var words = JSON.parse(document.getElementById("transcript-messages").textContent);
  var current = 0;
  var lines = Array.prototype.slice.call(list.querySelectorAll("li.utterance"));
  var litLine = null;
  var litWord = null;

  /* Words become clickable spans carrying their start time. */
  lines.forEach(function (line) {
    var said = line.querySelector(".said");
    var timed = said ? JSON.parse(said.getAttribute("data-words") || "[]") : [];
    if (timed.length > 0) {
      said.textContent = "";
      timed.forEach(function (word, index) {
        var span = document.createElement("span");
        span.className = "w";
        span.setAttribute("data-start", String(word[0]));
        span.textContent = word[2];
        if (index > 0) { said.appendChild(document.createTextNode(" ")); }
        said.appendChild(span);
      });
    }
    /* A line's time becomes a button: the keyboard's way to seek. */
    var when = line.querySelector(".when");
    if (when) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "seek";
      button.textContent = when.textContent;
      button.setAttribute("aria-label", words.play_from + " " + when.textContent);
      button.setAttribute("data-start", line.getAttribute("data-start"));
      when.textContent = "";
      when.appendChild(button);
    }
  });

  function partAt(seconds) {
    var found = 0;
    for (var i = 0; i < parts.length; i += 1) {
      if (seconds >= parts[i].offset) { found = i; }
    }
    return found;
  }

  function seek(seconds) {
    var index = partAt(seconds);
    if (index !== current) {
      current = index;
      player.src = parts[index].src;
    }
    player.currentTime = Math.max(0, seconds - parts[index].offset);
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () { /* paused by the user */ }); }
    highlight();
  }

  list.addEventListener("click", function (event) {
    var target = event.target.closest("[data-start]");
    if (!target || target.tagName === "LI") { return; }
    seek(parseFloat(target.getAttribute("data-start")));
  });

  function mark(element, previous) {
    if (previous === element) { return element; }
    if (previous) { previous.removeAttribute("aria-current"); }
    if (element) { element.setAttribute("aria-current", "true"); }
    return element;
  }

  function highlight() {
    var seconds = (parts.length ? parts[current].offset : 0) + player.currentTime;
    var line = null;
    for (var i = 0; i < lines.length; i += 1) {
      if (parseFloat(lines[i].getAttribute("data-start")) <= seconds) { line = lines[i]; }
    }
    if (line && seconds > parseFloat(line.getAttribute("data-end")) + 1) { line = null; }
    litLine = mark(line, litLine);
    var word = null;
    if (line) {
      var spans = line.querySelectorAll(".w");
      for (var j = 0; j < spans.length; j += 1) {
        if (parseFloat(spans[j].getAttribute("data-start")) <= seconds) { word = spans[j]; }
      }
    }
    litWord = mark(word, litWord);
  }

  player.addEventListener("timeupdate", highlight);
  player.addEventListener("seeked", highlight);
  player.addEventListener("ended", function () {
    if (current < parts.length - 1) { seek(parts[current + 1].offset); }
  });
}());

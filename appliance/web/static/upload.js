/* The session page, enhanced: uploads with a live progress bar, recording in the browser
   (MediaRecorder), and the processing table kept up to date without reloading the page.
   Without JavaScript the form posts, and the page refreshes itself while work runs. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest) { return; }
  var api = form.getAttribute("data-api");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var box = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var percent = document.getElementById("upload-percent");
  var label = document.getElementById("upload-label");
  var errorBox = document.getElementById("upload-error");
  var words = JSON.parse(document.getElementById("upload-messages").textContent);
  var sending = false;
  var recording = false;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function setProgress(value) {
    bar.value = value;
    bar.textContent = value + " %";
    percent.textContent = value + " %";
  }

  function problemText(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.detail) { return body.detail; }
    } catch (ignored) { /* not JSON: fall through */ }
    return words.failed + " (" + xhr.status + ")";
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  /* The same endpoint as the API: the body is the file itself, streamed and encrypted as it
     arrives; the Idempotency-Key makes a retried request return the first upload. */
  function send(blob, what, done) {
    if (sending) { return; }
    sending = true;
    errorBox.hidden = true;
    label.textContent = what;
    setProgress(0);
    box.hidden = false;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", api);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", blob.type || "application/octet-stream");
    xhr.setRequestHeader("Idempotency-Key", newKey());
    xhr.upload.onprogress = function (event) {
      if (event.lengthComputable && event.total > 0) {
        setProgress(Math.round((event.loaded / event.total) * 100));
      }
    };
    xhr.onload = function () {
      sending = false;
      if (xhr.status === 202) {
        setProgress(100);
        label.textContent = done;
        window.location.assign(window.location.pathname + "?done=uploaded");
      } else {
        box.hidden = true;
        showError(words.not_stored + " " + problemText(xhr));
      }
    };
    xhr.onerror = function () {
      sending = false;
      box.hidden = true;
      showError(words.network);
    };
    xhr.send(blob);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("recording-file");
    if (!input.files || input.files.length === 0) {
      showError(words.choose);
      input.focus();
      return;
    }
    send(input.files[0], words.uploading_file, words.uploaded);
  });

  /* Recording in the browser. */
  var recorderBox = document.getElementById("recorder");
  var canRecord = recorderBox && window.MediaRecorder && navigator.mediaDevices &&
    navigator.mediaDevices.getUserMedia;
  if (canRecord) {
    recorderBox.hidden = false;
    var start = document.getElementById("record-start");
    var stop = document.getElementById("record-stop");
    var elapsed = document.getElementById("record-elapsed");
    var status = document.getElementById("record-status");
    var media = null;
    var timer = null;

    var pickType = function () {
      var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
      for (var i = 0; i < types.length; i += 1) {
        if (MediaRecorder.isTypeSupported(types[i])) { return types[i]; }
      }
      return "";
    };

    var clock = function (seconds) {
      var m = Math.floor(seconds / 60);
      var s = Math.floor(seconds % 60);
      return (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
    };

    start.addEventListener("click", function () {
      errorBox.hidden = true;
      navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
        var type = pickType();
        var chunks = [];
        media = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
        media.ondataavailable = function (event) {
          if (event.data && event.data.size > 0) { chunks.push(event.data); }
        };
        media.onstop = function () {
          stream.getTracks().forEach(function (track) { track.stop(); });
          window.clearInterval(timer);
          recording = false;
          start.disabled = false;
          stop.disabled = true;
          status.textContent = words.stopped;
          send(new Blob(chunks, { type: media.mimeType || type }), words.uploading_recording,
            words.uploaded);
        };
        var began = Date.now();
        media.start(1000);
        recording = true;
        start.disabled = true;
        stop.disabled = false;
        stop.focus();
        status.textContent = words.recording;
        timer = window.setInterval(function () {
          elapsed.textContent = clock((Date.now() - began) / 1000);
        }, 250);
      }).catch(function (error) {
        showError(words.no_microphone + " " + (error && error.name ? error.name : error));
      });
    });

    stop.addEventListener("click", function () {
      if (media && media.state !== "inactive") { media.stop(); }
    });
  }

  /* Keep the processing table current (what the page's no-script refresh does otherwise),
     but never while an upload or a recording is under way. */
  var progress = document.getElementById("progress");
  if (progress && progress.getAttribute("data-busy") === "true" && window.fetch && window.DOMParser) {
    var poll = window.setInterval(function () {
      if (sending || recording) { return; }
      window.fetch(window.location.pathname, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("progress");
          if (!fresh) { return; }
          progress.innerHTML = fresh.innerHTML;
          if (fresh.getAttribute("data-busy") !== "true") {
            progress.setAttribute("data-busy", "false");
            window.clearInterval(poll);
          }
        })
        .catch(function () { /* offline for a moment: try again at the next tick */ });
    }, 5000);
  }
}());

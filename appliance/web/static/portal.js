// The portal's progressive enhancement: stream answers, play citations in place, voice questions.
// Without this file the page still works: the form posts and the page shows the saved answer.
"use strict";

// On every portal page: a citation (or a homework item's moment) plays in place, under the
// link, instead of opening the file.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.play");
  if (!link) return;
  event.preventDefault();
  let player = link.parentElement.querySelector("audio");
  if (!player) {
    player = document.createElement("audio");
    player.controls = true;
    player.src = link.href;
    link.insertAdjacentElement("afterend", player);
  }
  player.play().catch(() => {});
});

(function () {
  const form = document.getElementById("ask");
  if (!form) return;
  const list = document.getElementById("conversation");
  const problem = document.getElementById("problem");
  const question = form.querySelector("#question");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const conversation = form.querySelector("input[name=conversation_id]");
  // The page's language: its strings (translated by the server, in <body data-i18n>), dates.
  const lang = document.documentElement.lang || "en";
  const strings = JSON.parse(document.body.dataset.i18n || "{}");
  function t(key, fallback, values) {
    const text = strings[key] || fallback;
    return text.replace(/%\((\w+)\)s/g, (whole, name) => (values && name in values ? values[name] : whole));
  }
  // "8 October 2026" (en-GB order: no 10/8 vs 8/10), "8 באוקטובר 2026" in Hebrew.
  const dateFormat = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : lang,
    { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });

  function longDate(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return dateFormat.format(new Date(Date.UTC(y, m - 1, d)));
  }

  // How far into the session: "3:05", "1:02:05" (like the server's `elapsed`), shown as
  // "3:05 into the session", never a bare "03:05" that reads like a time of day.
  function elapsed(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = String(whole % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function turn(role) {
    const item = el("li", `turn ${role}`);
    const said = el("p", "said");
    item.appendChild(said);
    list.appendChild(item);
    return { item, said };
  }

  function showProblem(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  function citations(items) {
    const ol = el("ol", "citations");
    for (const c of items) {
      const li = el("li");
      const day = longDate(c.session_date);
      if (c.in_recording && c.end > c.start) {
        const link = el("a", "play", t("session_at", "Session of %(day)s, %(time)s into the session",
          { day, time: elapsed(c.start) }));
        link.href = `/portal/listen/${c.session_id}?start=${c.start.toFixed(2)}&end=${c.end.toFixed(2)}`;
        li.appendChild(link);
        li.appendChild(el("q", "", c.excerpt));
      } else {
        // A therapist's typed item: their note of the session, not words said at a moment.
        li.appendChild(el("span", "notes",
          t("notes_of", "From your therapist's notes of the session of %(day)s", { day })));
        li.appendChild(el("span", "noted", c.excerpt));
      }
      ol.appendChild(li);
    }
    return ol;
  }

  // SSE over fetch (EventSource cannot POST): events are separated by a blank line.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield [name, JSON.parse(data.join("\n"))];
      }
    }
  }

  async function ask(text) {
    showProblem("");
    turn("patient").said.textContent = text;
    const answer = turn("assistant");
    answer.item.classList.add("pending");
    answer.item.setAttribute("aria-busy", "true");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch("/api/v1/chat/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ question: text, conversation_id: conversation.value || null }),
        credentials: "same-origin",
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.detail || t("failed", "That did not work; please try again."));
      }
      let finished = false;
      for await (const [name, data] of events(response)) {
        if (name === "delta") answer.said.textContent += data.text;
        else if (name === "answer") {
          finished = true;
          answer.said.textContent = data.answer;
          if (data.refused) answer.item.classList.add("refused", `reason-${data.reason}`);
          if (data.citations.length) answer.item.appendChild(citations(data.citations));
          conversation.value = data.conversation_id || "";
        } else if (name === "error") throw new Error(data.detail);
      }
      if (!finished) throw new Error(t("cut_off", "The answer was cut off; please ask again."));
      answer.item.id = "answer";
    } catch (error) {
      answer.item.remove();  // never leave half an answer looking like a whole one
      showProblem(error.message);
    } finally {
      answer.item.classList.remove("pending");
      answer.item.removeAttribute("aria-busy");
      button.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    question.value = "";
    ask(text);
  });

  // Voice: record in the browser, transcribe on the appliance, put the words in the box so
  // the patient sees what was heard before asking.
  const speak = document.getElementById("speak");
  const status = document.getElementById("voice-status");
  if (!speak || !window.MediaRecorder || !navigator.mediaDevices) return;
  speak.hidden = false;
  let recorder = null;
  let stopTimer = null;
  const LONGEST_MS = 30000;

  async function transcribe(blob) {
    status.textContent = t("listening_back", "Listening back…");
    const body = new FormData();
    body.append("audio", blob, "question.webm");
    const response = await fetch("/api/v1/chat/voice", {
      method: "POST", headers: { "X-CSRF-Token": csrf }, body, credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || t("not_understood", "The recording could not be understood."));
    question.value = data.question;
    question.focus();
    status.textContent = t("check_words", "Check the words, then press Ask.");
  }

  speak.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    showProblem("");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      showProblem(t("no_microphone", "The microphone is not available to this page."));
      return;
    }
    const pieces = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => pieces.push(e.data));
    recorder.addEventListener("stop", () => {
      clearTimeout(stopTimer);
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      speak.setAttribute("aria-pressed", "false");
      speak.textContent = t("speak", "Speak your question");
      transcribe(new Blob(pieces, { type: pieces[0] ? pieces[0].type : "audio/webm" }))
        .catch((error) => { status.textContent = ""; showProblem(error.message); });
    });
    recorder.start();
    speak.setAttribute("aria-pressed", "true");
    speak.textContent = t("stop", "Stop recording");
    status.textContent = t("recording", "Recording… press Stop when you are done (30 seconds at most).");
    stopTimer = setTimeout(() => recorder && recorder.stop(), LONGEST_MS);
  });
})();

// Homework check-off without a reload: post the same form, then take the item and the count
// from the page the server answers with, so what is shown is what was saved. Any trouble:
// the plain form post (POST-redirect-GET) does it instead.
(function () {
  const progress = document.getElementById("homework-progress");
  if (!progress) return;
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.tick");
    if (!form) return;
    event.preventDefault();
    const item = form.closest("li.task");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(item.id);
      const count = page.getElementById("homework-progress");
      if (!fresh || !count) throw new Error("unexpected page");
      const replacement = document.importNode(fresh, true);
      item.replaceWith(replacement);
      progress.textContent = count.textContent;
      replacement.querySelector("form.tick button").focus();
    } catch (error) {
      form.submit();
    }
  });
})();

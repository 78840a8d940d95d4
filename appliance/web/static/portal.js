// The portal's progressive enhancement: stream answers, play citations in place, voice questions.
// Without this file the page still works: the form posts and the page shows the saved answer.
"use strict";

(function () {
  const form = document.getElementById("ask");
  if (!form) return;
  const list = document.getElementById("conversation");
  const problem = document.getElementById("problem");
  const question = form.querySelector("#question");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const conversation = form.querySelector("input[name=conversation_id]");
  const months = ["January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"];

  function longDate(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return `${d} ${months[m - 1]} ${y}`;
  }

  function clock(seconds) {
    const whole = Math.floor(seconds);
    const mm = String(Math.floor(whole / 60)).padStart(2, "0");
    return `${mm}:${String(whole % 60).padStart(2, "0")}`;
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
      const link = el("a", "play", `Session of ${longDate(c.session_date)}, ${clock(c.start)}`);
      link.href = `/portal/listen/${c.session_id}?start=${c.start.toFixed(2)}&end=${c.end.toFixed(2)}`;
      li.appendChild(link);
      li.appendChild(el("q", "", c.excerpt));
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
        throw new Error(body.detail || "That did not work; please try again.");
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
      if (!finished) throw new Error("The answer was cut off; please ask again.");
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

  // A citation plays in place, under the link, instead of opening the file.
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
    status.textContent = "Listening back…";
    const body = new FormData();
    body.append("audio", blob, "question.webm");
    const response = await fetch("/api/v1/chat/voice", {
      method: "POST", headers: { "X-CSRF-Token": csrf }, body, credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || "The recording could not be understood.");
    question.value = data.question;
    question.focus();
    status.textContent = "Check the words, then press Ask.";
  }

  speak.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    showProblem("");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      showProblem("The microphone is not available to this page.");
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
      speak.textContent = "Speak your question";
      transcribe(new Blob(pieces, { type: pieces[0] ? pieces[0].type : "audio/webm" }))
        .catch((error) => { status.textContent = ""; showProblem(error.message); });
    });
    recorder.start();
    speak.setAttribute("aria-pressed", "true");
    speak.textContent = "Stop recording";
    status.textContent = "Recording… press Stop when you are done (30 seconds at most).";
    stopTimer = setTimeout(() => recorder && recorder.stop(), LONGEST_MS);
  });
})();

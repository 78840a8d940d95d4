// Pages that show work under way (a session's stages, a transcript being made) update their
// main content in place every few seconds, instead of reloading with <meta http-equiv=refresh>:
// a reload moves a screen reader back to the top and can interrupt someone mid-form (WCAG
// 2.2.1). While focus is inside the content the update waits, so nothing is replaced under
// the person using it. Without JavaScript the page is simply reloaded by hand.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main) return;
  const seconds = Number(main.dataset.refreshSeconds);
  if (!(seconds > 0)) return;

  async function update() {
    if (main.contains(document.activeElement) && document.activeElement !== main) {
      return schedule();  // someone is using the content: try again later
    }
    let fresh;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return schedule();
      const text = await response.text();
      fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
    } catch (error) {
      return schedule();
    }
    if (!fresh) return schedule();
    main.replaceChildren(...Array.from(fresh.childNodes, (node) => document.adoptNode(node)));
    if (fresh.dataset.refreshSeconds) schedule();
    else delete main.dataset.refreshSeconds;  // the work is done: stop asking
  }

  function schedule() {
    window.setTimeout(update, seconds * 1000);
  }

  schedule();
})();

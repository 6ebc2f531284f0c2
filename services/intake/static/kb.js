// Help-centre suggestions while the customer types the subject: a debounced GET /v1/kb/search, the best
// three shown as links (opened in a new tab, so the half-written form stays). Text goes in as textContent.
const DEBOUNCE_MS = 300;
const MIN_CHARS = 3;
const SHOWN = 3;

const subject = document.getElementById("subject");
const box = document.getElementById("kb-suggestions");
const list = document.getElementById("kb-suggestion-list");

let timer = null;
let inFlight = null;

function show(results) {
  list.replaceChildren(
    ...results.slice(0, SHOWN).map((result) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      // In the language picked on the page, if any (app.js keeps it on <html>).
      const picked = document.documentElement.dataset.pickedLanguage;
      link.href = `/kb/${encodeURIComponent(result.slug)}${picked ? `?lang=${encodeURIComponent(picked)}` : ""}`;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = result.title;
      item.append(link);
      return item;
    }),
  );
  box.hidden = results.length === 0;
}

async function search(query) {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  try {
    const response = await fetch(`/v1/kb/search?q=${encodeURIComponent(query)}`, { signal: controller.signal });
    if (!response.ok) return;
    const body = await response.json();
    if (inFlight === controller) show(body.results || []);
  } catch (error) {
    // Aborted by a newer query, or the network is away: suggestions are a nicety, the form works without.
    if (error.name !== "AbortError") show([]);
  }
}

if (subject && box && list) {
  subject.addEventListener("input", () => {
    clearTimeout(timer);
    const query = subject.value.trim();
    if (query.length < MIN_CHARS) {
      inFlight?.abort();
      show([]);
      return;
    }
    timer = setTimeout(() => search(query), DEBOUNCE_MS);
  });
}

// The customer page: the contact form and the live chat widget. Plain DOM, no framework, no build step.
// User and agent text is only ever written with textContent.

const FORM_ID = "contact";
// The server's email check wants a dot in the domain; the browser's own type=email check does not.
const EMAIL_FORMAT = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

// ---------------------------------------------------------------- shared helpers

function byId(id) {
  return document.getElementById(id);
}

// ---------------------------------------------------------------- language

// The page's texts come from the server's catalogues (GET /v1/i18n, shared/locales): in the language the
// customer picked with the switch (kept in localStorage, and sent with the form and the chat as their
// choice), else the one the server negotiates from the browser's Accept-Language.
const LANGUAGE_STORAGE_KEY = "switchboard.language";
let locale = "en";
let messages = {};
let pickedLanguage = loadPickedLanguage();
const languageRefreshers = [];

function loadPickedLanguage() {
  try {
    return localStorage.getItem(LANGUAGE_STORAGE_KEY);
  } catch {
    return null;
  }
}

function savePickedLanguage(language) {
  pickedLanguage = language;
  try {
    localStorage.setItem(LANGUAGE_STORAGE_KEY, language);
  } catch {
    // Without storage the pick lasts as long as the page.
  }
}

/** Fills {name} placeholders; numbers are written as the language writes them. */
function fill(text, fields = {}) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in fields)) return whole;
    const value = fields[name];
    return typeof value === "number" ? value.toLocaleString(locale) : String(value);
  });
}

/** The text `key` in the page's language. */
function t(key, fields = {}) {
  const text = messages[key];
  return fill(typeof text === "string" ? text : key, fields);
}

/** The form of plural text `key` for `count` (Intl.PluralRules picks the CLDR category). */
function tn(key, count, fields = {}) {
  const forms = messages[key] ?? {};
  const form = forms[new Intl.PluralRules(locale).select(count)] ?? forms.other ?? key;
  return fill(form, { count, ...fields });
}

/** The customer's IANA time zone, sent along so dates to them are in their own time. */
function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

function applyTexts() {
  document.documentElement.lang = locale;
  document.title = t("page.title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
  for (const refresh of languageRefreshers) refresh();
  // The help centre follows a language picked here (`?lang=`, which its pages keep on their links; kb.js reads
  // the pick from <html>); without a pick it answers the browser's Accept-Language like this page.
  const picked = pickedLanguage ? locale : "";
  document.documentElement.dataset.pickedLanguage = picked;
  const helpCentre = byId("help-centre-link");
  if (helpCentre) helpCentre.search = picked ? `?lang=${encodeURIComponent(picked)}` : "";
}

function fillLanguageSwitch(languages) {
  const select = byId("language");
  select.replaceChildren(
    ...languages.map((language) => {
      const option = document.createElement("option");
      option.value = language.locale;
      option.lang = language.locale;
      option.textContent = language.name;
      return option;
    }),
  );
  select.value = locale;
}

async function loadTexts(language) {
  const query = language ? `?lang=${encodeURIComponent(language)}` : "";
  const response = await fetch(`/v1/i18n${query}`);
  if (!response.ok) throw new Error(`texts: HTTP ${response.status}`);
  const body = await response.json();
  locale = body.locale;
  messages = body.messages;
  fillLanguageSwitch(body.languages);
  applyTexts();
}

byId("language").addEventListener("change", async (event) => {
  savePickedLanguage(event.target.value);
  await loadTexts(pickedLanguage);
});

/** The most characters an input takes (data-max-length), or 0 for no limit. */
function maxLength(input) {
  return Number(input.dataset.maxLength ?? 0);
}

/** "Please keep …" when the text is over its input's limit, else "". */
function lengthProblem(input, value) {
  const limit = maxLength(input);
  if (limit > 0 && value.length > limit) {
    return tn("error.too_long", limit, { length: value.length });
  }
  return "";
}

/** What is wrong with an input's value, judged by its own attributes ("" when nothing is). */
function fieldProblem(input) {
  const value = input.value.trim();
  if (!value) return input.required ? t("error.required") : "";
  const tooLong = lengthProblem(input, value);
  if (tooLong) return tooLong;
  if (input.type === "email" && !EMAIL_FORMAT.test(value)) return t("error.email");
  const pattern = input.dataset.pattern;
  if (pattern && !new RegExp(`^(?:${pattern})$`, "u").test(value)) return t(input.dataset.patternMessage);
  return "";
}

function showFieldError(input, message) {
  byId(`${input.id}-error`).textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** Checks every input, marks the wrong ones and returns the first of them (or null). */
function firstInvalid(inputs) {
  let first = null;
  for (const input of inputs) {
    const problem = fieldProblem(input);
    showFieldError(input, problem);
    if (problem && !first) first = input;
  }
  return first;
}

/** Once a field was flagged, its message follows the typing (and the language switch), so the customer
 * sees when it is fixed. */
function revalidateWhileTyping(inputs) {
  for (const input of inputs) {
    const revalidate = () => {
      if (input.hasAttribute("aria-invalid")) showFieldError(input, fieldProblem(input));
    };
    input.addEventListener("input", revalidate);
    languageRefreshers.push(revalidate);
  }
}

/** Keeps "used / allowed" next to a textarea; returns the refresh for when the text is changed by code. */
function attachCounter(textarea, output) {
  const refresh = () => {
    output.textContent = tn("form.counter", maxLength(textarea), { used: textarea.value.length });
    output.classList.toggle("is-error", textarea.value.length > maxLength(textarea));
  };
  textarea.addEventListener("input", refresh);
  languageRefreshers.push(refresh);
  refresh();
  return refresh;
}

/** A random (version 4) UUID. crypto.randomUUID only exists on https pages; getRandomValues works everywhere. */
function newUuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------- contact form

const contactForm = byId("contact-form");
const contactInputs = ["name", "email", "phone", "subject", "message"].map(byId);
const contactAlert = byId("contact-alert");
const contactSubmit = byId("contact-submit");
const contactSuccess = byId("contact-success");
const refreshMessageCounter = attachCounter(byId("message"), byId("message-count"));

// One Idempotency-Key per distinct submission: pressing Send again with the same content (a double
// click, a retry after a network error) reuses it, so the server makes one ticket at most; edited
// content is a new submission with a new key.
let submission = null;
let sending = false;

function showContactAlert(lines) {
  contactAlert.replaceChildren();
  for (const line of lines) {
    const paragraph = document.createElement("p");
    paragraph.textContent = line;
    contactAlert.append(paragraph);
  }
  contactAlert.hidden = lines.length === 0;
}

function contactPayload(guard) {
  const payload = {};
  for (const input of contactInputs) {
    const value = input.value.trim();
    if (value) payload[input.name] = value;
  }
  // The language only when the customer picked one: otherwise the browser's Accept-Language speaks for them.
  if (pickedLanguage) payload.language = pickedLanguage;
  const timeZone = browserTimeZone();
  if (timeZone) payload.timezone = timeZone;
  // What tells this page's posts from a bot's (services/intake/spam.py): the honeypot, which only a
  // program fills in, the signed render stamp, and the captcha's token when there is a captcha.
  if (honeypot.value) payload.website = honeypot.value;
  if (guard?.stamp) payload.form_stamp = guard.stamp;
  if (captchaToken) payload.captcha_token = captchaToken;
  return JSON.stringify(payload);
}

// ---------------------------------------------------------------- spam checks

const honeypot = byId("website");
let captchaToken = "";
let captchaWidget = null;
const CAPTCHA_SCRIPTS = {
  turnstile: { src: "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit", global: "turnstile" },
  hcaptcha: { src: "https://js.hcaptcha.com/1/api.js?render=explicit", global: "hcaptcha" },
};

/** Loads the provider's widget into the form; its token is sent with the form and verified by the server. */
function renderCaptcha({ provider, site_key: sitekey }) {
  const { src, global } = CAPTCHA_SCRIPTS[provider];
  const script = document.createElement("script");
  script.src = src;
  script.async = true;
  script.addEventListener("load", () => {
    captchaWidget = { api: window[global] };
    captchaWidget.id = captchaWidget.api.render(byId("contact-captcha"), {
      sitekey,
      callback: (token) => { captchaToken = token; },
      "expired-callback": () => { captchaToken = ""; },
    });
  });
  document.head.append(script);
}

function resetCaptcha() {
  captchaToken = "";
  if (captchaWidget) captchaWidget.api.reset(captchaWidget.id);
}

/** The form's stamp (signed render time), the fill time the server asks for, and the captcha if any. */
async function loadFormGuard() {
  try {
    const response = await fetch(`/v1/forms/${FORM_ID}/stamp`, { cache: "no-store" });
    if (!response.ok) return null;
    const guard = await response.json();
    guard.receivedAt = performance.now();
    if (guard.captcha) renderCaptcha(guard.captcha);
    return guard;
  } catch {
    return null;
  }
}

const formGuard = loadFormGuard();

/** Waits out what is left of the minimum fill time (with a margin for the clocks), so a quick person is
 * never taken for a bot. */
async function fillTimePassed(guard) {
  if (!guard) return;
  const left = guard.min_fill_ms + 250 - (performance.now() - guard.receivedAt);
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
}

function setSending(isSending) {
  sending = isSending;
  contactSubmit.disabled = isSending;
  contactSubmit.textContent = isSending ? t("form.sending") : t("form.send");
  contactForm.setAttribute("aria-busy", String(isSending));
}

function showTicketNumber(ticketId) {
  const ticket = byId("contact-ticket");
  const number = document.createElement("strong");
  number.textContent = ticketId;
  const [before, after] = t("form.ticket_number").split("{ticket_id}");
  ticket.replaceChildren(before ?? "", number, after ?? "");
  contactForm.hidden = true;
  contactSuccess.hidden = false;
  // The form the focus was in is gone; the ticket number is what the customer needs to hear next.
  ticket.focus();
}

/** Puts each server-side field error next to its field; the rest (e.g. "(body)") goes to the top. */
function showServerErrors(details) {
  const general = [];
  let firstField = null;
  for (const detail of details) {
    const input = contactInputs.find((candidate) => candidate.name === detail.field);
    if (input) {
      showFieldError(input, detail.message);
      firstField ??= input;
    } else {
      general.push(detail.message);
    }
  }
  showContactAlert(general.length ? general : [t("error.correct_fields")]);
  (firstField ?? contactAlert).focus();
}

async function handleContactResponse(response) {
  if (response.status === 202) {
    const { ticket_id: ticketId } = await response.json();
    submission = null;
    contactForm.reset();
    resetCaptcha();
    refreshMessageCounter();
    showTicketNumber(ticketId);
    return;
  }
  if (response.status === 422) {
    const body = await response.json().catch(() => ({}));
    showServerErrors(Array.isArray(body.detail) ? body.detail : []);
    return;
  }
  if (response.status === 429) {
    const seconds = Number(response.headers.get("Retry-After")) || 60;
    showContactAlert([t("form.rate_limited", { seconds })]);
  } else if (response.status === 413) {
    showContactAlert([t("form.too_large")]);
  } else if (response.status >= 500) {
    showContactAlert([t("form.server_trouble")]);
  } else {
    showContactAlert([t("form.failed", { status: String(response.status) })]);
  }
  contactAlert.focus();
}

contactForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (sending) return;
  showContactAlert([]);
  const invalid = firstInvalid(contactInputs);
  if (invalid) {
    invalid.focus();
    return;
  }
  setSending(true);
  const guard = await formGuard;
  const body = contactPayload(guard);
  if (submission?.body !== body) submission = { body, key: newUuid() };
  try {
    await fillTimePassed(guard);
    const response = await fetch(`/v1/forms/${FORM_ID}`, {
      method: "POST",
      // Field errors come back in the page's language.
      headers: { "Content-Type": "application/json", "Idempotency-Key": submission.key, "Accept-Language": locale },
      body,
    });
    await handleContactResponse(response);
  } catch {
    showContactAlert([t("form.unreachable")]);
    contactAlert.focus();
  } finally {
    setSending(false);
  }
});

byId("contact-again").addEventListener("click", () => {
  contactSuccess.hidden = true;
  contactForm.hidden = false;
  contactInputs[0].focus();
});

revalidateWhileTyping(contactInputs);

// ---------------------------------------------------------------- chat widget

// The session (token, ticket ID, last message shown) survives a reload in localStorage. A fresh page
// has rendered nothing, so it resumes with last_seen = null and the server replays the whole
// conversation; a reconnect on the same page sends the last message it shows and gets only what it
// missed. Messages are keyed by ID, so a replay never shows one twice.
const CHAT_STORAGE_KEY = "switchboard.chat";
const RECONNECT_FIRST_DELAY_MS = 1000;
const RECONNECT_MAX_DELAY_MS = 30000;
// The chat server's refusals the customer can act on, by code (SPEC §2 error frames).
const CHAT_ERROR_TEXT = {
  rate_limited: "chat.error.rate_limited",
  too_long: "chat.error.too_long",
  too_big: "chat.error.too_long",
  unavailable: "chat.error.unavailable",
};

function chatErrorText(refusal) {
  const key = CHAT_ERROR_TEXT[refusal.code];
  return key ? t(key) : null;
}

const chatStart = byId("chat-start");
const chatStartInputs = [byId("chat-name"), byId("chat-email")];
const chatConversation = byId("chat-conversation");
const chatLog = byId("chat-log");
const chatComposer = byId("chat-composer");
const chatText = byId("chat-text");
const chatStatus = byId("chat-status");
const refreshChatCounter = attachCounter(chatText, byId("chat-text-count"));

let session = loadSession(); // {token, ticketId, lastSeen: {id, at} | null} once the server opened one
let introduction = null; // name and email for the hello that opens a new session
let socket = null; // the current connection; events from older ones are ignored
let sessionReady = false;
let awaitingEcho = false; // a sent message stays in the box until the server confirms it
let reconnectAttempts = 0;
let reconnectTimer = null;
const renderedIds = new Set();
// On a reload the history is replayed: only what arrived after the last message shown before is news.
const announceAfter = Date.parse(session?.lastSeen?.at ?? "") || 0;

// Storage can be off (privacy modes, blocked cookies); the chat then just does not survive a reload.
function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(CHAT_STORAGE_KEY));
  } catch {
    return null;
  }
}

function saveSession() {
  try {
    if (session) localStorage.setItem(CHAT_STORAGE_KEY, JSON.stringify(session));
    else localStorage.removeItem(CHAT_STORAGE_KEY);
  } catch {
    // See loadSession: nothing to do without storage.
  }
}

function setChatStatus(text, isError = false) {
  chatStatus.textContent = text;
  chatStatus.classList.toggle("is-error", isError);
}

function showTicket(ticketId) {
  byId("chat-ticket-id").textContent = ticketId;
  byId("chat-ticket").hidden = !ticketId;
}

function showConversation() {
  chatStart.hidden = true;
  chatConversation.hidden = false;
}

function showStart(statusText = "", isError = false) {
  chatConversation.hidden = true;
  chatStart.hidden = false;
  showTicket("");
  setChatStatus(statusText, isError);
}

function setComposerReady(ready) {
  sessionReady = ready;
  byId("chat-send").disabled = !ready;
}

function formatTime(isoTime) {
  const time = new Date(isoTime);
  return Number.isNaN(time.getTime()) ? "" : time.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
}

function appendMessage(frame) {
  const item = document.createElement("li");
  item.className = frame.from === "agent" ? "message from-agent" : "message from-customer";
  const meta = document.createElement("p");
  meta.className = "message-meta";
  const author = document.createElement("span");
  author.textContent = frame.from === "agent" ? t("chat.agent") : t("chat.you");
  const time = document.createElement("time");
  time.dateTime = frame.at;
  time.textContent = formatTime(frame.at);
  meta.append(author, " ", time);
  const text = document.createElement("p");
  text.className = "message-text";
  text.textContent = frame.text;
  item.append(meta, text);
  chatLog.append(item);
  chatLog.scrollTop = chatLog.scrollHeight;
}

function receiveMessage(frame) {
  if (renderedIds.has(frame.id)) return;
  renderedIds.add(frame.id);
  appendMessage(frame);
  if (frame.from === "customer" && awaitingEcho) {
    awaitingEcho = false;
    chatText.readOnly = false;
    chatText.value = "";
    refreshChatCounter();
  }
  if (frame.from === "agent" && Date.parse(frame.at) > announceAfter) {
    byId("chat-announcer").textContent = t("chat.agent_said", { text: frame.text });
  }
  session.lastSeen = { id: frame.id, at: frame.at };
  saveSession();
}

// ---------------------------------------------------------------- CSAT prompt in the chat

// Rating requests sit under the conversation, one per resolution (the server may push one again: a second
// tab, a retry). An unanswered one is kept with the session, so a reload shows it again.
const chatRatings = byId("chat-ratings");
const ratingPrompts = new Map();

/** "How did we do?" with one button per score; a click sends {type: "csat", resolution, score}. */
function showRatingPrompt(frame) {
  if (!session || frame.ticket_id !== session.ticketId || ratingPrompts.has(frame.resolution)) return;
  const request = { ticket_id: frame.ticket_id, resolution: frame.resolution, scores: frame.scores };
  session.pendingRatings = [...(session.pendingRatings ?? []).filter((r) => r.resolution !== frame.resolution), request];
  saveSession();
  const item = document.createElement("div");
  item.className = "csat-prompt";
  const question = document.createElement("p");
  question.id = `csat-question-${frame.resolution}`;
  question.textContent = t("chat.csat.question");
  const buttons = document.createElement("div");
  buttons.className = "csat-buttons";
  buttons.setAttribute("role", "group");
  buttons.setAttribute("aria-labelledby", question.id);
  const scores = Array.isArray(frame.scores) && frame.scores.length ? frame.scores : [1, 2, 3, 4, 5];
  for (const score of scores) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button button-secondary";
    button.textContent = String(score);
    button.setAttribute("aria-label", t("chat.csat.score", { score, word: t(`csat.word.${score}`) }));
    button.disabled = !sessionReady;
    button.addEventListener("click", () => sendRating(frame.resolution, score));
    buttons.append(button);
  }
  item.append(question, buttons);
  ratingPrompts.set(frame.resolution, item);
  chatRatings.append(item);
  byId("chat-announcer").textContent = t("chat.csat.announce");
}

function sendRating(resolution, score) {
  if (!sessionReady) {
    setChatStatus(t("chat.not_connected_rating"), true);
    return;
  }
  for (const button of ratingPrompts.get(resolution).querySelectorAll("button")) button.disabled = true;
  socket.send(JSON.stringify({ type: "csat", resolution, score }));
}

function thankForRating(resolution) {
  const item = ratingPrompts.get(resolution);
  if (!item) return;
  const thanks = document.createElement("p");
  thanks.textContent = t("chat.csat.thanks");
  item.replaceChildren(thanks);
  byId("chat-announcer").textContent = t("chat.csat.thanks");
  session.pendingRatings = (session.pendingRatings ?? []).filter((r) => r.resolution !== resolution);
  saveSession();
}

/** Buttons work only while connected; an unconfirmed rating can be sent again after a reconnect. */
function enableRatingButtons(enabled) {
  for (const item of ratingPrompts.values()) {
    for (const button of item.querySelectorAll("button")) button.disabled = !enabled;
  }
}

function helloFrame() {
  if (!session) {
    const timeZone = browserTimeZone();
    return {
      type: "hello",
      ...introduction,
      ...(pickedLanguage && { language: pickedLanguage }),
      ...(timeZone && { timezone: timeZone }),
    };
  }
  const lastSeen = renderedIds.size ? session.lastSeen?.id ?? null : null;
  return { type: "hello", token: session.token, last_seen: lastSeen };
}

function chatUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/chat`;
}

function connect() {
  setChatStatus(t("chat.connecting"));
  const connection = new WebSocket(chatUrl());
  socket = connection;
  let opened = false;
  let refusal = null;

  connection.addEventListener("open", () => connection.send(JSON.stringify(helloFrame())));
  connection.addEventListener("message", (event) => {
    if (connection !== socket) return;
    const frame = JSON.parse(event.data);
    if (frame.type === "session") {
      opened = true;
      openSession(frame);
    } else if (frame.type === "message") {
      receiveMessage(frame);
    } else if (frame.type === "csat") {
      showRatingPrompt(frame);
    } else if (frame.type === "csat_thanks") {
      thankForRating(frame.resolution);
    } else if (frame.type === "error") {
      refusal = frame;
      setChatStatus(chatErrorText(frame) ?? t("chat.refused", { detail: frame.detail }), true);
    }
  });
  connection.addEventListener("close", () => {
    if (connection === socket) connectionClosed(opened, refusal);
  });
}

function openSession(frame) {
  const isNew = session?.token !== frame.token;
  session = {
    token: frame.token,
    ticketId: frame.ticket_id,
    lastSeen: isNew ? null : session.lastSeen,
    pendingRatings: isNew ? [] : session.pendingRatings ?? [],
  };
  saveSession();
  introduction = null;
  reconnectAttempts = 0;
  showTicket(frame.ticket_id);
  setComposerReady(true);
  for (const request of session.pendingRatings) showRatingPrompt(request);
  enableRatingButtons(true);
  setChatStatus(t("chat.connected"));
}

/** No connection, no sending; an unconfirmed message stays in the box to be sent again. */
function releaseComposer() {
  setComposerReady(false);
  enableRatingButtons(false);
  awaitingEcho = false;
  chatText.readOnly = false;
}

function connectionClosed(opened, refusal) {
  socket = null;
  releaseComposer();
  if (refusal?.code === "unknown_session") {
    forgetSession();
    showStart(t("chat.ended"));
    return;
  }
  if (refusal && !opened && refusal.code !== "unavailable") {
    // The server refused the hello itself (e.g. the email); trying again would fail the same way.
    showStart(t("chat.not_started", { detail: refusal.detail }), true);
    return;
  }
  scheduleReconnect(refusal);
}

function scheduleReconnect(refusal) {
  const ceiling = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_FIRST_DELAY_MS * 2 ** reconnectAttempts);
  // Jitter spreads out the reconnects of every open page after a server restart.
  const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
  reconnectAttempts += 1;
  const reason = refusal ? chatErrorText(refusal) ?? refusal.detail : t("chat.lost");
  const kept = chatText.value.trim() ? ` ${t("chat.unsent_kept")}` : "";
  setChatStatus(`${t("chat.reconnecting", { reason, seconds: Math.ceil(delay / 1000) })}${kept}`, true);
  reconnectTimer = setTimeout(connect, delay);
}

function forgetSession() {
  session = null;
  saveSession();
  renderedIds.clear();
  ratingPrompts.clear();
  chatRatings.replaceChildren();
  chatLog.replaceChildren();
}

function sendChatMessage() {
  const text = chatText.value.trim();
  if (!text || awaitingEcho) return;
  const tooLong = lengthProblem(chatText, text);
  if (tooLong) {
    // Sent, the server would refuse it and close the chat; kept here, the customer can shorten it.
    setChatStatus(t("chat.message_too_long", { problem: tooLong }), true);
    return;
  }
  if (!sessionReady) {
    setChatStatus(t("chat.not_connected"), true);
    return;
  }
  awaitingEcho = true;
  chatText.readOnly = true;
  socket.send(JSON.stringify({ type: "message", text }));
}

chatStart.addEventListener("submit", (event) => {
  event.preventDefault();
  const invalid = firstInvalid(chatStartInputs);
  if (invalid) {
    invalid.focus();
    return;
  }
  const [name, email] = chatStartInputs.map((input) => input.value.trim());
  introduction = { ...(name && { name }), ...(email && { email }) };
  showConversation();
  chatText.focus();
  connect();
});

chatComposer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendChatMessage();
});

chatText.addEventListener("keydown", (event) => {
  // Shift+Enter makes a new line; isComposing leaves Enter to input methods that confirm a word with it.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendChatMessage();
  }
});

byId("chat-new").addEventListener("click", () => {
  const closing = socket;
  socket = null;
  closing?.close(1000);
  clearTimeout(reconnectTimer);
  releaseComposer();
  forgetSession();
  showStart();
  chatStartInputs[0].focus();
});

revalidateWhileTyping(chatStartInputs);
releaseComposer();
// The texts first: the chat's status lines and the form's errors are written in the page's language.
try {
  await loadTexts(pickedLanguage);
} catch {
  // The page's own English stays; dynamic texts then show their IDs until a reload works.
}
if (session) {
  showConversation();
  showTicket(session.ticketId);
  connect();
}

// Loopgate console: local times, countdowns, the live queue, copy buttons, the args editor.
// Plain JavaScript, no build step. Every page works without it; this makes it live.
"use strict";

(() => {
  const localFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const DECISIONS = ["request.response_received", "request.cancelled", "request.expired"];

  // "4 min 10 s", "2 h 5 min", "3 days": a duration the way people say it.
  function duration(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return seconds % 60 && minutes < 10 ? `${minutes} min ${seconds % 60} s` : `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
    return `${Math.floor(hours / 24)} days`;
  }

  function showTimes(root) {
    for (const el of root.querySelectorAll("time[data-local], time[data-age], time[data-countdown]")) {
      const moment = new Date(el.dateTime);
      if (Number.isNaN(moment.getTime())) continue;
      el.title = localFormat.format(moment);
      if (el.hasAttribute("data-local")) el.textContent = localFormat.format(moment);
    }
    tick(root);
  }

  function tick(root) {
    const now = Date.now();
    for (const el of root.querySelectorAll("time[data-age]")) {
      el.textContent = `${duration(now - Date.parse(el.dateTime))} ago`;
    }
    for (const el of root.querySelectorAll("time[data-countdown]")) {
      const left = Date.parse(el.dateTime) - now;
      el.textContent = left > 0 ? `in ${duration(left)}` : "now";
      el.classList.toggle("soon", left < 60_000);
    }
  }

  // The viewer's time zone, for forms whose dates are days in it.
  function fillTimeZones() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (const input of document.querySelectorAll('input[name="tz"]')) {
      if (!input.value && zone) input.value = zone;
    }
  }

  function requestIdOf(message) {
    return JSON.parse(message.data).data.request_id;
  }

  // EventSource reconnects by itself (sending Last-Event-ID); a closed one means the
  // server refused it, e.g. after sign-out: reloading shows the sign-in page.
  function follow(url, status) {
    const source = new EventSource(url);
    source.addEventListener("open", () => {
      if (status) status.textContent = "Live: updates arrive as they happen.";
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) window.location.reload();
      else if (status) status.textContent = "Reconnecting…";
    });
    return source;
  }

  function liveQueue(queue) {
    const status = document.querySelector("[data-live-status]");
    const count = document.querySelector("[data-queue-count]");
    const empty = document.querySelector("[data-queue-empty]");
    const title = document.title;
    const decided = new Set();
    const cardOf = (id) => queue.querySelector(`[data-request-id="${CSS.escape(id)}"]`);
    const expiry = (card) => (card.dataset.expires ? Date.parse(card.dataset.expires) : Infinity);

    function counted() {
      const n = queue.children.length;
      count.textContent = String(n);
      empty.hidden = n > 0;
      document.title = n ? `(${n}) ${title}` : title;
    }

    function insert(card) {
      const later = [...queue.children].find((other) => expiry(other) > expiry(card));
      queue.insertBefore(card, later || null);
      showTimes(card);
      counted();
    }

    // The card as the server renders it now; null when there is none to show.
    async function fetchCard(id) {
      const tab = queue.dataset.cardQuery || ""; // "?show=all" on the All tab
      const response = await fetch(`/console/requests/${encodeURIComponent(id)}/card${tab}`, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected) {
        window.location.reload(); // signed out meanwhile
        return null;
      }
      if (response.status !== 200) return null; // 204: decided before we asked, or not for this tab
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      return template.content.firstElementChild;
    }

    const source = follow(queue.dataset.events, status);
    source.addEventListener("request.created", async (message) => {
      const id = requestIdOf(message);
      if (cardOf(id) || decided.has(id)) return;
      const card = await fetchCard(id);
      if (card && !cardOf(id) && !decided.has(id)) insert(card);
    });
    // A vote short of the quorum: the card shown gets the new count of approvals.
    source.addEventListener("request.vote_cast", async (message) => {
      const id = requestIdOf(message);
      if (!cardOf(id)) return;
      const card = await fetchCard(id);
      const shown = cardOf(id);
      if (card && shown && !decided.has(id)) {
        shown.replaceWith(card);
        showTimes(card);
      }
    });
    for (const type of DECISIONS) {
      source.addEventListener(type, (message) => {
        const id = requestIdOf(message);
        decided.add(id);
        const card = cardOf(id);
        if (card) {
          card.remove();
          counted();
        }
      });
    }
    counted();
  }

  // On a request's page: when it is decided elsewhere, show the outcome.
  function watchRequest(article) {
    let answering = false;
    for (const form of article.querySelectorAll("form[data-answer]")) {
      form.addEventListener("submit", () => {
        answering = true;
      });
    }
    const source = follow(article.dataset.watch, null);
    // Someone else's vote: show it, unless that would lose what is being typed here.
    source.addEventListener("request.vote_cast", (message) => {
      if (answering || requestIdOf(message) !== article.dataset.requestId) return;
      const typed = article.querySelector("textarea");
      if (typed && typed.value.trim()) return;
      source.close();
      window.location.replace(window.location.pathname);
    });
    for (const type of DECISIONS) {
      source.addEventListener(type, (message) => {
        if (answering || requestIdOf(message) !== article.dataset.requestId) return;
        source.close();
        window.location.replace(`${window.location.pathname}?notice=decided`);
      });
    }
  }

  function copyButtons() {
    for (const button of document.querySelectorAll("[data-copy]")) {
      const field = document.getElementById(button.dataset.copy);
      const status = document.querySelector("[data-copy-status]");
      button.hidden = false;
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(field.value);
          status.textContent = "Copied to the clipboard.";
        } catch {
          field.select(); // no clipboard access (e.g. plain http on another host): select it
          status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
        }
      });
    }
  }

  // The args editor: checks the JSON as it is typed and lists what the edit changes
  // against the args as asked. The server is the judge (the request's schema); this helps.
  function argsEditor(editor) {
    const form = editor.form;
    const status = form.querySelector("[data-args-status]");
    const diff = form.querySelector("[data-args-diff]");
    const original = JSON.parse(editor.dataset.original);
    const same = (a, b) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
    const shown = (value) => (value === undefined ? "(none)" : JSON.stringify(value));

    function canonical(value) {
      if (Array.isArray(value)) return value.map(canonical);
      if (value && typeof value === "object") {
        return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
      }
      return value;
    }

    function line(key, before, after) {
      const item = document.createElement("li");
      item.dataset.changedKey = key;
      const name = document.createElement("code");
      name.textContent = key;
      const was = document.createElement("del");
      was.textContent = shown(before);
      const now = document.createElement("ins");
      now.textContent = shown(after);
      item.append(name, ": ", was, " → ", now);
      return item;
    }

    function check() {
      let edited;
      try {
        edited = JSON.parse(editor.value);
      } catch (error) {
        editor.setCustomValidity("The args are not valid JSON.");
        editor.setAttribute("aria-invalid", "true");
        status.textContent = `Not valid JSON: ${error.message}`;
        diff.hidden = true;
        return;
      }
      if (!edited || typeof edited !== "object" || Array.isArray(edited)) {
        editor.setCustomValidity("The args must be a JSON object.");
        editor.setAttribute("aria-invalid", "true");
        status.textContent = "The args must be a JSON object ({…}).";
        diff.hidden = true;
        return;
      }
      editor.setCustomValidity("");
      editor.removeAttribute("aria-invalid");
      const keys = [...new Set([...Object.keys(original), ...Object.keys(edited)])].sort();
      const changed = keys.filter((k) => !same(original[k], edited[k]));
      diff.replaceChildren(...changed.map((k) => line(k, original[k], edited[k])));
      diff.hidden = changed.length === 0;
      status.textContent = changed.length
        ? `Valid JSON; ${changed.length} key${changed.length === 1 ? "" : "s"} changed:`
        : "Valid JSON; unchanged: approving it approves the call as asked.";
    }

    editor.addEventListener("input", check);
    check();
  }

  document.addEventListener("DOMContentLoaded", () => {
    showTimes(document);
    setInterval(() => tick(document), 1000);
    fillTimeZones();
    copyButtons();
    for (const editor of document.querySelectorAll("textarea[data-args-editor]")) argsEditor(editor);
    const queue = document.querySelector("[data-queue]");
    if (queue && window.EventSource) liveQueue(queue);
    const article = document.querySelector("article[data-watch]");
    if (article && window.EventSource) watchRequest(article);
  });
})();

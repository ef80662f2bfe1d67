// Careline web chat: WebSocket first, plain HTTP polling when sockets are unavailable.
(() => {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const fileInput = document.getElementById("file");
  const tickets = document.getElementById("tickets");
  const notice = document.getElementById("notice");
  const TOKEN_KEY = "careline.visitor";
  // The page's words in the visitor's language, chosen by the server (Accept-Language).
  const T = JSON.parse(document.querySelector("main").dataset.texts || "{}");
  // A framed page on another site may be denied storage (Chromium throws when third-party
  // cookies are blocked): the token then lives as long as the page.
  const store = {
    get() { try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } },
    set(value) { try { localStorage.setItem(TOKEN_KEY, value); } catch (e) { /* kept in memory */ } },
  };
  let token = store.get();
  let last = 0;
  let socket = null;
  let polling = false;

  const headers = () => (token ? { "X-Careline-Visitor": token } : {});
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function render(line) {
    if (line.id <= last) return;
    last = line.id;
    const item = document.createElement("li");
    item.className = "line line--" + line.direction + (line.agent ? " line--agent" : "");
    item.dataset.id = line.id;
    item.appendChild(speaker(line));
    let text = line.text || "";
    if (line.attachment) text = (text ? text + "\n" : "") + "📎 " + line.attachment.name;
    if (!text && line.choice) text = line.choice;
    if (text) {
      const body = document.createElement("div");
      body.className = "line__text";
      body.textContent = text;
      item.appendChild(body);
    }
    if (line.download) item.appendChild(downloadLink(line.download));
    const offersChoices = line.direction === "out" && line.choices && line.choices.length;
    // A set of buttons answers the step it was sent for: once the visitor says anything, or
    // a newer set or a person's message arrives, pressing an old one would act out of turn.
    if (line.direction === "in" || offersChoices || line.agent) retireChoices();
    if (offersChoices) item.appendChild(choiceGroup(line.choices));
    item.appendChild(stamp(line.at));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function speaker(line) {
    const who = document.createElement("div");
    if (!line.agent) {
      who.className = "visually-hidden";
      who.textContent = line.direction === "in" ? T.you : T.assistant;
      return who;
    }
    const name = line.agent.name || T.agent;
    who.className = "line__who";
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = name.trim().charAt(0).toUpperCase() || "?";
    const label = document.createElement("span");
    label.textContent = name;
    const role = document.createElement("span");
    role.className = "line__role";
    role.textContent = T.support_team;
    who.append(avatar, label, role);
    return who;
  }

  function stamp(at) {
    const time = document.createElement("time");
    time.className = "line__time";
    const when = at ? new Date(at) : new Date();
    time.dateTime = when.toISOString();
    const sameDay = when.toDateString() === new Date().toDateString();
    const clock = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.textContent = sameDay ? clock : when.toLocaleDateString([], { day: "numeric", month: "short" }) + ", " + clock;
    time.title = when.toLocaleString();
    return time;
  }

  function choiceGroup(choices) {
    const group = document.createElement("div");
    group.className = "choices";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", T.choices);
    for (const choice of choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = choice.label;
      button.addEventListener("click", () => {
        if (button.disabled) return;
        button.classList.add("chosen");
        button.setAttribute("aria-pressed", "true");
        retire(group);
        send({ text: choice.label, choice: choice.value });
      });
      group.appendChild(button);
    }
    return group;
  }

  function retire(group) {
    group.classList.add("choices--used");
    group.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  }

  function retireChoices() {
    log.querySelectorAll(".choices:not(.choices--used)").forEach(retire);
  }

  function downloadLink(download) {
    const link = document.createElement("a");
    link.className = "line__download";
    link.href = download.href;
    link.download = download.name || "careline-data.json";
    link.textContent = download.label;
    // Fetched with the visitor's token: a framed page may have no cookie to send with a plain link.
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const response = await fetch(download.href, { headers: headers(), credentials: "same-origin" });
      if (!response.ok) return say(T.download_failed);
      const file = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = file;
      save.download = link.download;
      document.body.appendChild(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(file), 10000);
    });
    return link;
  }

  function update(payload) {
    (payload.lines || []).forEach(render);
    if (payload.tickets) {
      tickets.textContent = payload.tickets
        .map((t) => `${t.reference} · ${t.status}${t.assignee ? " · " + t.assignee : ""}`)
        .join("   ");
    }
    if (payload.error) say(payload.error);
  }

  async function start() {
    const response = await fetch("/chat/api/session", { method: "POST", headers: headers(), credentials: "same-origin" });
    const data = await response.json().catch(() => ({}));
    if (!response.ok || !data.token) {
      // Refused (too many sessions from here, or the chat is starting): say why and try
      // again when the server allows, keeping any token we already had.
      const wait = Number(response.headers.get("Retry-After")) || 5;
      say(data.error || data.detail || T.unavailable_retrying);
      setTimeout(() => start().catch(() => say(T.unavailable)), wait * 1000);
      return;
    }
    token = data.token;
    store.set(token);
    update(data);
    if (!log.children.length) send({ text: "/start" }, true);
    connect();
  }

  function connect() {
    if (!("WebSocket" in window)) return poll();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // The token rides in a subprotocol, never in the URL (URLs end up in logs); a socket
    // cannot carry our header, and a framed page may get no cookie.
    socket = new WebSocket(`${scheme}://${location.host}/chat/ws?after=${last}`, ["careline", "careline-visitor." + token]);
    socket.onopen = () => say("");
    socket.onmessage = (event) => update(JSON.parse(event.data));
    socket.onclose = () => {
      socket = null;
      say(T.reconnecting);
      setTimeout(connect, 1500);
    };
    socket.onerror = () => { if (!polling) poll(); };
  }

  async function poll() {
    if (polling) return;
    polling = true;
    while (!socket || socket.readyState !== WebSocket.OPEN) {
      try {
        const response = await fetch(`/chat/api/messages?after=${last}&wait=20`, { headers: headers() });
        update(await response.json());
      } catch (error) {
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    polling = false;
  }

  async function send(body, quiet) {
    body.client_id = newId();
    body.language = navigator.language || document.documentElement.lang;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(body));
      return;
    }
    const response = await fetch("/chat/api/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers() },
      body: JSON.stringify(body),
    });
    if (!response.ok && !quiet) say(T.not_sent);
    if (!polling) poll();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text });
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    const data = new FormData();
    data.append("file", file);
    const response = await fetch(`/chat/api/upload?client_id=${newId()}`, { method: "POST", headers: headers(), body: data });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      say(problem.error || T.file_not_sent);
    }
    fileInput.value = "";
  });

  start().catch(() => say(T.unavailable_later));
})();

// Careline console: progressive enhancement only. Every action works without this file.
"use strict";
(function () {
  const body = document.body;
  const csrf = body.dataset.csrf || "";

  // Live: the server says when what this page shows changed; fetch that part again.
  const live = body.dataset.live;
  const target = body.dataset.refresh && document.querySelector(body.dataset.refresh);
  const status = document.getElementById("live-status");
  if (live && target && window.EventSource) {
    let busy = false;
    const refresh = async function () {
      if (busy) return;
      busy = true;
      try {
        const answer = await fetch(body.dataset.fragment, { credentials: "same-origin" });
        if (answer.ok) {
          target.innerHTML = await answer.text();
          if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
        }
      } finally {
        busy = false;
      }
    };
    new EventSource(live, { withCredentials: true }).addEventListener("changed", refresh);
  }

  // A saved reply goes into the answer, where the agent can still edit it.
  document.querySelectorAll("select[data-canned-into]").forEach(function (select) {
    select.addEventListener("change", function () {
      const option = select.selectedOptions[0];
      const box = document.querySelector(select.dataset.cannedInto);
      if (!option || !option.dataset.text || !box) return;
      box.value = box.value.trim() ? box.value.trimEnd() + "\n\n" + option.dataset.text : option.dataset.text;
      select.value = "";
      box.focus();
    });
  });

  // Who else is on this ticket: said every 15 seconds, with whether a reply is being written.
  const presence = body.dataset.presence;
  const others = document.getElementById("others");
  const reply = document.getElementById("reply");
  if (presence && others) {
    const tell = async function () {
      if (document.hidden) return;
      const form = new URLSearchParams({ csrf: csrf, replying: reply && reply.value.trim() ? "1" : "0" });
      const answer = await fetch(presence, { method: "POST", body: form, credentials: "same-origin" });
      if (!answer.ok) return;
      const found = (await answer.json()).others;
      others.hidden = found.length === 0;
      others.textContent = found.map(function (o) {
        return o.name + (o.replying ? " is writing a reply" : " is looking at this ticket");
      }).join("; ") + (found.length ? "." : "");
    };
    if (reply) reply.addEventListener("input", function () { if (reply.value.length === 1) tell(); });
    setInterval(tell, 15000);
  }
})();

// Embed Careline's chat in any page: <script src="https://YOUR-CARELINE/chat/widget.js" async></script>
(() => {
  "use strict";
  const origin = new URL(document.currentScript.src).origin;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Chat with us";
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483000;padding:.75rem 1rem;border:0;border-radius:2rem;background:#1f6feb;color:#fff;font:16px system-ui,sans-serif;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.2)";
  const frame = document.createElement("iframe");
  frame.title = "Support chat";
  frame.src = origin + "/chat";
  frame.hidden = true;
  frame.style.cssText = "position:fixed;right:1rem;bottom:4.5rem;z-index:2147483000;width:min(380px,calc(100vw - 2rem));height:min(600px,calc(100vh - 6rem));border:1px solid #d0d7de;border-radius:.75rem;background:#fff;box-shadow:0 4px 16px rgba(0,0,0,.2)";
  button.addEventListener("click", () => {
    frame.hidden = !frame.hidden;
    button.setAttribute("aria-expanded", String(!frame.hidden));
  });
  document.body.append(frame, button);
})();

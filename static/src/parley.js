// Parley's only script: small behaviours htmx does not cover. No framework.
(function () {
  "use strict";

  // Close an open nav dropdown on Escape or on a click outside it.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    document.querySelectorAll("details[data-dropdown][open]").forEach(function (d) {
      d.open = false;
      d.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (e) {
    document.querySelectorAll("details[data-dropdown][open]").forEach(function (d) {
      if (!d.contains(e.target)) d.open = false;
    });
  });

  // Polls marked data-poll-when-visible (the room list) skip their request while the tab is
  // hidden. This replaces an hx-trigger filter ("every 30s [document.visibilityState…]"): htmx
  // evaluates those with eval, which the Content-Security-Policy forbids.
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (document.visibilityState === "hidden" && e.detail.elt.hasAttribute("data-poll-when-visible")) {
      e.preventDefault();
    }
  });

  // ---- The room page ------------------------------------------------------------------------
  var chat = document.getElementById("chat");
  if (!chat) return;

  var list = document.getElementById("message-list");
  var scroller = document.getElementById("message-scroller");
  var form = document.getElementById("composer");
  var textarea = document.getElementById("composer-body");
  var status = document.getElementById("connection-status");
  var socket = null; // htmx's socket wrapper, known after the first open
  var myId = chat.dataset.user;

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function lastSeq() {
    var last = 0;
    list.querySelectorAll("article[data-seq]").forEach(function (a) {
      var s = parseInt(a.dataset.seq, 10);
      if (s > last) last = s;
    });
    return last;
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  // Messages can arrive twice (a live frame and a catch-up) or out of order (a live frame
  // before the catch-up batch): keep one element per id, sorted by seq.
  function normalize() {
    var seen = {};
    var prev = -1;
    var sorted = true;
    list.querySelectorAll("article[data-seq]").forEach(function (a) {
      if (seen[a.id]) { a.remove(); return; }
      seen[a.id] = true;
      var s = parseInt(a.dataset.seq, 10);
      if (s < prev) sorted = false;
      prev = s;
    });
    if (!sorted) {
      var items = Array.from(list.querySelectorAll("article[data-seq]"));
      items.sort(function (x, y) { return x.dataset.seq - y.dataset.seq; });
      items.forEach(function (a) { list.appendChild(a); });
    }
    var empty = document.getElementById("empty-room");
    if (empty && list.querySelector("article")) empty.remove();
  }

  function markMine(root) {
    if (!myId) return;
    root.querySelectorAll('article[data-author="' + myId + '"]').forEach(function (a) {
      a.classList.add("is-mine");
    });
  }

  function localiseTimes(root) {
    root.querySelectorAll("article time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    });
  }

  function resume() {
    if (socket) socket.send(JSON.stringify({ type: "resume", after_seq: lastSeq() }));
  }

  // Enter sends, Shift+Enter makes a new line.
  textarea.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  // ---- Sending: every message gets a client_id and shows as pending until the server's
  // fragment with that client_id comes back. A resend with the same client_id is stored once,
  // so retrying after a lost acknowledgement is always safe. The typed text is never lost.
  var pendingList = document.getElementById("pending-list");
  var pendingTemplate = document.getElementById("pending-template");
  var pending = {}; // client_id -> {body, el, timer}
  var ACK_TIMEOUT_MS = 10000;

  function transmit(clientId) {
    var p = pending[clientId];
    if (!p) return;
    setPendingState(p, "pending");
    clearTimeout(p.timer);
    p.timer = setTimeout(function () { setPendingState(p, "failed"); }, ACK_TIMEOUT_MS);
    if (socket) socket.send(JSON.stringify({ type: "message", body: p.body, client_id: clientId }), form);
  }

  function setPendingState(p, state) {
    p.el.dataset.state = state;
    var label = p.el.querySelector(".pending-status");
    label.textContent = label.dataset[state === "failed" ? "textFailed" : "textPending"];
    p.el.querySelector(".pending-retry").classList.toggle("hidden", state !== "failed");
  }

  function addPending(clientId, body) {
    var el = pendingTemplate.content.firstElementChild.cloneNode(true);
    el.dataset.pending = clientId;
    el.querySelector(".message-body").textContent = body;
    el.querySelector(".pending-retry").addEventListener("click", function () { transmit(clientId); });
    pendingList.appendChild(el);
    pending[clientId] = { body: body, el: el, timer: null };
    scrollToBottom();
  }

  function settlePending() {
    Object.keys(pending).forEach(function (clientId) {
      if (list.querySelector('article[data-client-id="' + clientId + '"]')) {
        clearTimeout(pending[clientId].timer);
        pending[clientId].el.remove();
        delete pending[clientId];
        document.getElementById("composer-error").textContent = "";
      }
    });
  }

  // The server refused a message (too long, rate limited…): give the text back to the composer.
  function refusePending() {
    var error = document.getElementById("composer-error");
    var p = pending[error.dataset.clientId];
    if (!p) return;
    clearTimeout(p.timer);
    if (!textarea.value.trim()) {
      textarea.value = p.body;
      p.el.remove();
      delete pending[error.dataset.clientId];
    } else {
      setPendingState(p, "failed");
    }
  }

  form.addEventListener("htmx:wsConfigSend", function (e) {
    // Sending is ours (transmit), so a resend can reuse the same client_id.
    e.preventDefault();
    var body = textarea.value;
    if (!body.trim()) return;
    var clientId = uuid4();
    addPending(clientId, body);
    textarea.value = "";
    transmit(clientId);
  });

  chat.addEventListener("htmx:wsConnecting", function () {
    if (status.dataset.state !== "offline") setStatus("connecting", status.dataset.textConnecting || "Connecting…");
  });
  var socketOpen = false;
  chat.addEventListener("htmx:wsOpen", function (e) {
    socket = e.detail.socketWrapper;
    socketOpen = true;
    setStatus("connected", status.dataset.textConnected || "Connected");
    resume();
    // Anything unacknowledged is sent again: the server stores each client_id once.
    Object.keys(pending).forEach(transmit);
  });
  chat.addEventListener("htmx:wsClose", function (e) {
    socketOpen = false;
    var code = e.detail.event.code;
    Object.keys(pending).forEach(function (id) { setPendingState(pending[id], "failed"); });
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) {
      setStatus("reconnecting", status.dataset.textReconnecting || "Reconnecting…");
    } else if (code === 4401) {
      setStatus("closed", status.dataset.textUnauthenticated || "Signed out — reload to log in");
    } else if (code === 4404) {
      setStatus("closed", status.dataset.textNotFound || "This room is not available");
    } else if (code === 4429) {
      setStatus("closed", status.dataset.textTooMany || "Too many open tabs — close one and reload");
    } else {
      setStatus("closed", status.dataset.textClosed || "Disconnected — reload the page");
    }
  });
  window.addEventListener("offline", function () { setStatus("offline", status.dataset.textOffline || "Offline"); });
  // Going offline does not always close an open websocket (Chromium keeps it): when the
  // network is back, either the socket survived (catch up) or reconnect now rather than after
  // the extension's backoff, which grows to a minute.
  window.addEventListener("online", function () {
    if (socketOpen) {
      setStatus("connected", status.dataset.textConnected || "Connected");
      resume();
    } else if (socket && status.dataset.state !== "closed") {
      setStatus("reconnecting", status.dataset.textReconnecting || "Reconnecting…");
      socket.reconnect();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") resume();
  });

  var stick = true;
  chat.addEventListener("htmx:wsBeforeMessage", function () { stick = nearBottom(); });
  chat.addEventListener("htmx:wsAfterMessage", function () {
    if (document.getElementById("chat-reload").dataset.reload) {
      window.location.reload();
      return;
    }
    normalize();
    markMine(list);
    localiseTimes(list);
    settlePending();
    refusePending();
    if (stick) scrollToBottom();
  });

  markMine(list);
  localiseTimes(list);
  scrollToBottom();
  document.body.addEventListener("htmx:afterSwap", function () { localiseTimes(list); markMine(list); });
})();

// The room page (chat/room_detail.html): the timeline, the composer and the room socket. Loaded
// after parley.js, whose window.Parley handles the per-user frames this socket also carries.
(function () {
  "use strict";

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
  var roomId = chat.dataset.room;
  var texts = chat.dataset; // data-text-* (translated in the template)
  var Parley = window.Parley || { receiveText: function () { return false; }, on: function () {}, counts: {} };
  var lang = document.documentElement.lang || undefined;
  var GROUP_MS = 5 * 60 * 1000;

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function send(frame) {
    if (socket) socket.send(JSON.stringify(frame), chat);
  }

  // ---- The timeline's elements. #message-list holds only articles in data-seq order, after
  // an optional #older-messages box. Each helper looks at neighbours, never the whole list.
  function isArticle(n) { return !!n && n.tagName === "ARTICLE"; }
  function num(el, key) { return parseInt(el.dataset[key], 10) || 0; }
  function versionOf(a) { return num(a, "version") || num(a, "seq"); }
  function messageId(a) { return parseInt(a.id.slice("message-".length), 10); }
  function hasUser(el, id) { return (" " + (el.dataset.users || "") + " ").indexOf(" " + id + " ") >= 0; }
  function prevArticle(a) {
    var n = a.previousElementSibling;
    return isArticle(n) ? n : null;
  }
  function nextArticle(a) {
    var n = a && a.nextElementSibling;
    return isArticle(n) ? n : null;
  }
  function firstArticle() {
    var n = list.firstElementChild;
    while (n && !isArticle(n)) n = n.nextElementSibling;
    return n;
  }
  function olderBox() { return document.getElementById("older-messages"); }
  // Opened at a message (?around=<seq>: search results, far reply jumps), the page may end
  // before the present: #newer-messages, after the list, loads the next newer page, and until
  // the pages reach the present nothing new is appended after the gap ("Jump to latest"
  // opens the latest page instead).
  function newerBox() { return document.getElementById("newer-messages"); }
  var aroundSeq = num(list, "around");
  function goLatest() { window.location.assign(list.dataset.latestUrl || window.location.pathname); }

  // ---- Times, in the viewer's timezone and language.
  function parseDate(s) {
    var d = s ? new Date(s) : null;
    return d && !isNaN(d) ? d : null;
  }
  function dayKey(d) { return d.getFullYear() * 10000 + d.getMonth() * 100 + d.getDate(); }
  function shortTime(d) { return d.toLocaleTimeString(lang, { hour: "numeric", minute: "2-digit" }); }
  // The narrow gutter of a grouped message: the clock without "AM"/"PM".
  var gutterFormat = new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" });
  function gutterTime(d) {
    return gutterFormat.formatToParts(d).filter(function (p) { return p.type !== "dayPeriod"; })
      .map(function (p) { return p.value; }).join("").trim();
  }
  function fullTime(d) { return d.toLocaleString(lang, { dateStyle: "full", timeStyle: "short" }); }
  function dayLabel(d) {
    var now = new Date();
    var days = Math.round((new Date(now.getFullYear(), now.getMonth(), now.getDate()) -
      new Date(d.getFullYear(), d.getMonth(), d.getDate())) / 86400000);
    if (days === 0) return texts.textToday || "Today";
    if (days === 1) return texts.textYesterday || "Yesterday";
    var opts = { weekday: "long", month: "long", day: "numeric" };
    if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    return d.toLocaleDateString(lang, opts);
  }

  // What one article needs once it is on the page (only articles just swapped in).
  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function prepare(a) {
    if (a.dataset.author === myId) a.classList.add("is-mine");
    // What every message has, from the page's templates (the broadcast carries only content).
    if (!a.querySelector(".day-divider")) a.prepend(fromTemplate("day-divider-template"));
    if (!a.hasAttribute("data-deleted")) {
      var row = a.querySelector(".message-row");
      if (row && !row.querySelector(".message-actions")) row.appendChild(fromTemplate("message-actions-template"));
      var reactions = a.querySelector(".reactions");
      if (reactions && !reactions.querySelector(".reaction-add")) reactions.appendChild(fromTemplate("reaction-add-template"));
    }
    var created = parseDate(a.dataset.created);
    if (created) {
      var t = a.querySelector(".message-time");
      if (t) { t.textContent = shortTime(created); t.title = fullTime(created); }
      var g = a.querySelector(".gutter-time");
      if (g) g.textContent = gutterTime(created);
    }
    var edited = a.querySelector(".message-edited");
    var editedAt = edited && parseDate(a.dataset.edited);
    if (editedAt) edited.title = (texts.textEdited || "Edited") + " " + fullTime(editedAt);
    a.querySelectorAll(".reaction").forEach(function (r) {
      r.setAttribute("aria-pressed", hasUser(r, myId) ? "true" : "false");
    });
    // Thumbnails: at most 20rem × 15rem, sized from their width/height attributes before they
    // load (no jump), narrower still on a small screen (max-width in app.css, height follows).
    a.querySelectorAll(".attachment-image img").forEach(function (img) {
      var w = parseInt(img.getAttribute("width"), 10), h = parseInt(img.getAttribute("height"), 10);
      if (!(w > 0 && h > 0)) return;
      var scale = Math.min(1, 320 / w, 240 / h);
      img.style.width = Math.round(w * scale) + "px";
    });
    a.querySelectorAll(".attachment-file").forEach(function (card) {
      if (!card.querySelector(".attachment-file-icon")) card.prepend(fromTemplate("attachment-file-icon"));
      if (!card.title) card.title = card.getAttribute("download") || ""; // a long name is cut
    });
  }

  // Grouping and the day separator depend on the article before: called for an article that
  // arrived and for the one after it.
  function decorate(a) {
    if (!a) return;
    var prev = prevArticle(a);
    var created = parseDate(a.dataset.created);
    var before = prev && parseDate(prev.dataset.created);
    var newDay = !created || !before || dayKey(created) !== dayKey(before);
    var grouped = !newDay && prev.dataset.author === a.dataset.author && a.id !== dividerFor &&
      !a.hasAttribute("data-reply-to") && created - before >= 0 && created - before < GROUP_MS;
    a.classList.toggle("is-grouped", grouped);
    var divider = a.querySelector(".day-divider");
    if (divider) {
      divider.hidden = !newDay || !created;
      if (!divider.hidden) divider.querySelector(".day-divider-label").textContent = dayLabel(created);
    }
  }

  function refreshDayLabels() { // "Today" becomes "Yesterday" at midnight
    list.querySelectorAll(".day-divider:not([hidden])").forEach(function (d) {
      var created = parseDate(d.closest("article").dataset.created);
      if (created) d.querySelector(".day-divider-label").textContent = dayLabel(created);
    });
  }

  // ---- Scrolling: stick to the bottom when there, otherwise keep the reader's anchor (the
  // first message at the top of the view) where it is whatever changes above it.
  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }
  function scrollToBottom() { scroller.scrollTop = scroller.scrollHeight; }

  function readAnchor() {
    var box = scroller.getBoundingClientRect();
    var hit = document.elementFromPoint(box.left + box.width / 2, box.top + 16);
    var a = hit && scroller.contains(hit) ? hit.closest("#message-list > article") : null;
    if (!a) {
      for (a = firstArticle(); a && a.getBoundingClientRect().bottom <= box.top; a = nextArticle(a)) { /* scan */ }
    }
    return a ? { id: a.id, top: a.getBoundingClientRect().top } : null;
  }
  function restoreAnchor(anchor) {
    var a = anchor && document.getElementById(anchor.id);
    if (!a) return;
    var delta = a.getBoundingClientRect().top - anchor.top;
    if (delta) scroller.scrollTop += delta;
  }

  var pill = document.getElementById("jump-latest");
  var pillNew = false;
  function updatePill() {
    if (newerBox()) { // the latest messages are not on this page: always offer them
      pill.hidden = false;
      pill.textContent = pillNew ? pill.dataset.textNew : pill.dataset.textLatest;
      return;
    }
    if (nearBottom()) {
      pillNew = false;
      pill.hidden = true;
      return;
    }
    var far = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight > scroller.clientHeight * 1.5;
    pill.hidden = !(pillNew || far);
    pill.textContent = pillNew ? pill.dataset.textNew : pill.dataset.textLatest;
  }
  pill.addEventListener("click", function () {
    if (newerBox()) { goLatest(); return; }
    scrollToBottom();
    pillNew = false;
    pill.hidden = true;
    scroller.focus({ preventScroll: true });
  });
  var scrollQueued = false;
  scroller.addEventListener("scroll", function () {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(function () { scrollQueued = false; updatePill(); readerMoved(); });
  }, { passive: true });

  // ---- Focus survives an article being swapped for its new version.
  function focusKey(el, article) {
    if (!el || el === article) return "";
    if (el.classList.contains("reaction")) return '.reaction[data-emoji="' + CSS.escape(el.dataset.emoji) + '"]';
    if (el.classList.contains("reaction-add")) return ".reaction-add";
    if (el.dataset.action) return '.message-action[data-action="' + el.dataset.action + '"]';
    if (el.classList.contains("reply-quote")) return ".reply-quote";
    if (el.classList.contains("attachment-image")) return '.attachment-image[data-viewer="' + CSS.escape(el.dataset.viewer) + '"]';
    if (el.classList.contains("attachment-file")) return '.attachment-file[href="' + CSS.escape(el.getAttribute("href")) + '"]';
    return "";
  }
  function refocus(article, key) {
    var el = (key && article.querySelector(key)) || article.querySelector(".message-action") || null;
    if (el) {
      el.focus({ preventScroll: true });
    } else {
      article.setAttribute("tabindex", "-1");
      article.focus({ preventScroll: true });
    }
  }

  // ---- The stream. Every frame's articles go through place(): a known id is replaced when
  // the newcomer's version is higher (else the newcomer is dropped), a new id goes in seq
  // order, and one older than the oldest loaded is dropped while older history is unloaded
  // (the history page will bring it in its current state).
  var maxVersion = 0; // what the socket has delivered (or the page came with): resume point
  // id -> the newest article that arrived, while a history page was on its way, for a
  // message above the loaded history (emptied when that page is in).
  var unloaded = {};
  // The same for messages past the last loaded one while a newer page is on its way.
  var unloadedNewer = {};

  function place(a) {
    var old = document.getElementById(a.id);
    if (old) {
      if (versionOf(a) <= versionOf(old)) return null;
      var focused = old.contains(document.activeElement) ? document.activeElement : null;
      var key = focused && !(editing && editing.article === old) ? focusKey(focused, old) : null;
      old.replaceWith(a);
      if (old.classList.contains("message-target")) { // the page's mark survives new versions
        a.classList.add("message-target");
        a.setAttribute("tabindex", "-1");
      }
      prepare(a);
      if (a.id === dividerFor) placeDivider(a);
      decorate(a);
      decorate(nextArticle(a));
      if (editing && editing.article === old) editorFollows(old, a);
      else if (focused) refocus(a, key);
      return "replaced";
    }
    var seq = num(a, "seq");
    var last = lastArticle();
    if (newerBox() && last && seq > num(last, "seq")) {
      // Past the loaded window: the newer pages bring it (in its current state), unless one
      // is on its way already. Never appended after the gap.
      var held = unloadedNewer[a.id];
      if (loadingNewer && (!held || versionOf(a) > versionOf(held))) unloadedNewer[a.id] = a;
      return "beyond";
    }
    var n = list.lastElementChild;
    while (isArticle(n) && num(n, "seq") > seq) n = n.previousElementSibling;
    if (!isArticle(n) && olderBox() && firstArticle()) {
      // Not loaded yet: the history page brings it in its current state — unless that page
      // is already on its way (read before this change). Then keep the newest state seen.
      var kept = unloaded[a.id];
      if (loadingOlder && (!kept || versionOf(a) > versionOf(kept))) unloaded[a.id] = a;
      return null;
    }
    if (n) n.after(a);
    else list.prepend(a);
    prepare(a);
    decorate(a);
    var after = nextArticle(a);
    decorate(after);
    var empty = document.getElementById("empty-room");
    if (empty) empty.remove();
    return after ? "inserted" : "added";
  }

  var frame = null; // the state of the websocket frame being applied
  chat.addEventListener("htmx:wsBeforeMessage", function (e) {
    // The user's own stream (JSON: counts, sidebar, notifications) rides on this socket too.
    if (Parley.receiveText(e.detail.message)) {
      e.preventDefault();
      return;
    }
    var stick = !newerBox() && nearBottom();
    frame = { stick: stick, anchor: stick ? null : readAnchor(), arrived: 0 };
  });
  // htmx hands us the frame's #message-list wrapper; we place its articles ourselves.
  list.addEventListener("htmx:oobBeforeSwap", function (e) {
    if (e.detail.target !== list) return;
    e.detail.shouldSwap = false;
    Array.from(e.detail.fragment.children).forEach(function (a) {
      if (!isArticle(a) || !a.id) return;
      var v = versionOf(a);
      if (v > maxVersion) maxVersion = v;
      var result = place(a);
      if (result === "beyond") {
        var clientId = a.dataset.clientId;
        if (clientId && pending[clientId]) {
          // My own message, sent from a page that does not reach the present: it is stored;
          // show it where it is, with the latest messages.
          clearTimeout(pending[clientId].timer);
          pending[clientId].el.remove();
          delete pending[clientId];
          goLatest();
        } else if (versionOf(a) <= num(a, "seq")) {
          pillNew = true; // a new message, not a change
        }
        return;
      }
      if (result === "added") typingPosted(a.dataset.author);
      if (result === "added" && frame && a.dataset.author !== myId) {
        frame.arrived++;
        arrivedUnseen(a);
      }
    });
  });

  function resume() {
    if (socket) socket.send(JSON.stringify({ type: "resume", after_seq: maxVersion }));
  }

  // ---- Older history: a page loads when "Load older messages" scrolls into view, or on
  // click. One page per intersection: the reader's anchor stays put, so the next button is
  // above the view. A button that only came into view because it got keyboard focus does not
  // load by itself (Enter does).
  var loadingOlder = null;
  var olderObserver = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (!entry.isIntersecting || !entry.target.isConnected) return;
      if (entry.target.contains(document.activeElement)) return;
      loadOlder();
    });
  }, { root: scroller, rootMargin: "80px 0px 0px 0px" }) : null;

  function watchOlder() {
    var box = olderBox();
    if (box && olderObserver) olderObserver.observe(box);
  }

  // ---- Newer history (below a page opened at a message): the same, downwards.
  var loadingNewer = null;
  var newerObserver = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (!entry.isIntersecting || !entry.target.isConnected) return;
      if (entry.target.contains(document.activeElement)) return;
      loadNewer();
    });
  }, { root: scroller, rootMargin: "0px 0px 80px 0px" }) : null;

  function watchNewer() {
    var box = newerBox();
    if (box && newerObserver) newerObserver.observe(box);
  }

  // A page of history (older or newer) as HTML; rejects on an error or when signed out
  // meanwhile (the answer is then the login page, not a page of history).
  function fetchHistory(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (r.redirected) {
        if (Parley.signedOut) Parley.signedOut();
        throw new Error("history: signed out");
      }
      if (!r.ok) throw new Error("history " + r.status);
      return r.text();
    });
  }

  function loadNewer() {
    if (loadingNewer) return loadingNewer;
    var box = newerBox();
    var button = box && box.querySelector("[data-newer-url]");
    if (!button) return Promise.resolve(false);
    button.setAttribute("aria-busy", "true");
    loadingNewer = fetchHistory(button.dataset.newerUrl)
      .then(function (html) {
        insertNewer(box, html, box.contains(document.activeElement));
        return true;
      })
      .catch(function () {
        button.removeAttribute("aria-busy");
        return false;
      })
      .finally(function () { loadingNewer = null; });
    return loadingNewer;
  }

  function insertNewer(box, html, hadFocus) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var page = tpl.content;
    var newBox = page.querySelector("#newer-messages");
    if (newBox) newBox.remove();
    var held = unloadedNewer;
    unloadedNewer = {};
    if (newerObserver) newerObserver.unobserve(box);
    var fresh = [];
    Array.from(page.children).forEach(function (a) {
      if (!isArticle(a) || document.getElementById(a.id)) return;
      var newer = held[a.id];
      delete held[a.id];
      if (newer && versionOf(newer) > versionOf(a)) a = newer; // changed while on its way
      list.appendChild(a);
      fresh.push(a);
    });
    if (newBox) box.replaceWith(newBox);
    else box.remove();
    fresh.forEach(prepare);
    fresh.forEach(decorate);
    // What arrived meanwhile past this page: placed now when the page reached the present
    // (else dropped again: the next page brings it).
    Object.keys(held).map(function (id) { return held[id]; })
      .sort(function (x, y) { return num(x, "seq") - num(y, "seq"); })
      .forEach(place);
    updatePill();
    if (hadFocus) {
      var next = newBox && newBox.querySelector("button");
      (next || fresh[0] || scroller).focus({ preventScroll: true });
    }
    watchNewer();
    scheduleRead();
  }

  function loadOlder() {
    if (loadingOlder) return loadingOlder;
    var box = olderBox();
    var button = box && box.querySelector("[data-older-url]");
    if (!button) return Promise.resolve(false);
    button.setAttribute("aria-busy", "true");
    loadingOlder = fetchHistory(button.dataset.olderUrl)
      .then(function (html) {
        insertOlder(box, html, box.contains(document.activeElement));
        return true;
      })
      .catch(function () {
        button.removeAttribute("aria-busy");
        stopSeeking(); // the reader loads it (or not) from here
        return false;
      })
      .finally(function () { loadingOlder = null; });
    return loadingOlder;
  }

  function insertOlder(box, html, hadFocus) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var page = tpl.content;
    var fresh = Array.from(page.children).filter(function (a) {
      if (!isArticle(a)) return false;
      if (document.getElementById(a.id)) { a.remove(); return false; } // already here
      return true;
    }).map(function (a) {
      var newer = unloaded[a.id];
      if (!newer || versionOf(newer) <= versionOf(a)) return a;
      a.replaceWith(newer); // changed while the page was on its way
      return newer;
    });
    unloaded = {};
    var anchor = readAnchor();
    var formerFirst = firstArticle();
    var newBox = page.querySelector("#older-messages");
    if (olderObserver) olderObserver.unobserve(box);
    box.replaceWith(page);
    fresh.forEach(prepare);
    fresh.forEach(decorate);
    decorate(formerFirst);
    restoreAnchor(anchor);
    olderPlaced(fresh);
    updatePill();
    if (hadFocus) {
      var next = newBox && newBox.querySelector("button");
      (next || scroller).focus({ preventScroll: true });
    }
    watchOlder();
  }

  // A reply's quote jumps to the original: on the page, or a few pages up (loaded until it
  // is on the page), or else the room opened at it (?around=its seq).
  var NEAR_SEQS = 150;
  function highlight(target) {
    target.scrollIntoView({ block: "center" });
    target.classList.remove("is-highlighted");
    void target.offsetWidth; // restart the animation
    target.classList.add("is-highlighted");
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
  function seekOlder(id) {
    var target = document.getElementById("message-" + id);
    if (target) { highlight(target); return; }
    if (!olderBox()) return;
    loadOlder().then(function (loaded) { if (loaded) seekOlder(id); });
  }
  function jumpTo(id) {
    var target = document.getElementById("message-" + id);
    if (target) { highlight(target); return; }
    fetch("/api/rooms/" + roomId + "/messages/" + encodeURIComponent(id) + "/", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (m) {
        var first = firstArticle();
        var seq = m && typeof m.seq === "number" ? m.seq : 0;
        var near = olderBox() && first && seq && seq < num(first, "seq") && seq >= num(first, "seq") - NEAR_SEQS;
        if (seq && !near) window.location.assign(window.location.pathname + "?around=" + seq + "#message-" + id);
        else seekOlder(id);
      })
      .catch(function () { seekOlder(id); });
  }
  list.addEventListener("animationend", function (e) {
    var a = e.target.closest && e.target.closest("article");
    if (a) a.classList.remove("is-highlighted");
  });

  // ---- Composer: Enter sends, Shift+Enter makes a new line, Up in an empty composer edits
  // your last message, Escape drops a reply.
  textarea.addEventListener("keydown", function (e) {
    if (e.isComposing) return;
    if (mentionBox && mentionBox.handleKey(e)) return;
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === "ArrowUp" && !textarea.value && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
      var a = list.lastElementChild;
      while (isArticle(a) && (a.dataset.author !== myId || a.hasAttribute("data-deleted"))) a = a.previousElementSibling;
      if (isArticle(a)) {
        e.preventDefault();
        startEdit(a);
      }
    } else if (e.key === "Escape" && replyTo) {
      e.preventDefault();
      cancelReply();
    }
  });

  // ---- Reply: a quote above the composer; the next message carries reply_to.
  var replyBar = document.getElementById("reply-bar");
  var replyTo = null;
  function startReply(article) {
    replyTo = messageId(article);
    replyBar.querySelector(".reply-bar-author").textContent = article.querySelector(".message-author").textContent;
    var body = article.querySelector(".message-body");
    var lines = body ? body.innerText.split("\n").filter(function (l) { return l.trim(); }) : [];
    replyBar.querySelector(".reply-bar-text").textContent = lines[0] || "";
    replyBar.hidden = false;
    textarea.focus();
  }
  function cancelReply() {
    replyTo = null;
    replyBar.hidden = true;
  }
  document.getElementById("reply-cancel").addEventListener("click", function () {
    cancelReply();
    textarea.focus();
  });

  // ---- Sending: every message gets a client_id and shows as pending until the server's
  // fragment with that client_id comes back. A resend with the same client_id is stored once,
  // so retrying after a lost acknowledgement is always safe. The typed text is never lost.
  var pendingList = document.getElementById("pending-list");
  var pendingTemplate = document.getElementById("pending-template");
  var pending = {}; // client_id -> {body, replyTo, el, timer}
  var ACK_TIMEOUT_MS = 10000;

  function transmit(clientId) {
    var p = pending[clientId];
    if (!p) return;
    setPendingState(p, "pending");
    clearTimeout(p.timer);
    p.timer = setTimeout(function () { setPendingState(p, "failed"); }, ACK_TIMEOUT_MS);
    var message = { type: "message", body: p.body, client_id: clientId };
    if (p.replyTo) message.reply_to = p.replyTo;
    if (p.files.length) message.attachments = p.files.map(function (f) { return f.id; });
    if (socket) socket.send(JSON.stringify(message), form);
  }

  function setPendingState(p, state) {
    p.el.dataset.state = state;
    var label = p.el.querySelector(".pending-status");
    label.textContent = label.dataset[state === "failed" ? "textFailed" : "textPending"];
    p.el.querySelector(".pending-retry").classList.toggle("hidden", state !== "failed");
  }

  function addPending(clientId, body, files) {
    var el = pendingTemplate.content.firstElementChild.cloneNode(true);
    el.dataset.pending = clientId;
    el.querySelector(".message-body").textContent = body;
    el.querySelector(".message-body").hidden = !body;
    // Its files by name (the thumbnails come with the server's article).
    var names = el.querySelector(".pending-files");
    files.forEach(function (f) {
      var li = document.createElement("li");
      li.appendChild(fromTemplate("attachment-file-icon")).setAttribute("class", "h-3.5 w-3.5 shrink-0");
      var span = document.createElement("span");
      span.textContent = f.name;
      li.appendChild(span);
      names.appendChild(li);
    });
    names.hidden = !files.length;
    el.querySelector(".pending-retry").addEventListener("click", function () { transmit(clientId); });
    pendingList.appendChild(el);
    pending[clientId] = { body: body, replyTo: replyTo, files: files, el: el, timer: null };
    scrollToBottom();
  }

  function settlePending() {
    // Stored: its article is on the page, or the server acknowledged it by name (a retry of
    // a message this socket already had, #message-ack).
    var ack = document.getElementById("message-ack");
    var acked = ack && ack.dataset.clientId;
    Object.keys(pending).forEach(function (clientId) {
      if (clientId === acked || document.querySelector('#message-list > article[data-client-id="' + clientId + '"]')) {
        clearTimeout(pending[clientId].timer);
        pending[clientId].el.remove();
        delete pending[clientId];
        document.getElementById("composer-error").textContent = "";
        attachments.sent(clientId); // the tray's copies of its files go
      }
    });
  }

  // The server refused a message (too long, rate limited…): give the text back to the composer.
  function refusePending(error) {
    var p = pending[error.dataset.clientId];
    if (!p) return false;
    clearTimeout(p.timer);
    // Back into the composer when it holds nothing new (text and files alike).
    if (!textarea.value.trim() && attachments.empty()) {
      textarea.value = p.body;
      attachments.restore(error.dataset.clientId);
      p.el.remove();
      delete pending[error.dataset.clientId];
      var original = p.replyTo && document.getElementById("message-" + p.replyTo);
      if (original) startReply(original);
    } else {
      setPendingState(p, "failed");
    }
    return true;
  }

  form.addEventListener("htmx:wsConfigSend", function (e) {
    // Sending is ours (transmit), so a resend can reuse the same client_id.
    e.preventDefault();
    var body = textarea.value;
    // Files still on their way: Send waits (the line under the composer says why).
    if (attachments.uploading()) {
      attachments.showWait(true);
      return;
    }
    var files = attachments.ready();
    if (!body.trim() && !files.length) return; // a message may be files only
    var clientId = uuid4();
    attachments.take(clientId);
    addPending(clientId, body.trim() ? body : "", files);
    cancelReply();
    textarea.value = "";
    if (mentionBox) mentionBox.close();
    transmit(clientId);
  });

  // ---- Attachments (issue 12): the attach button, files dropped anywhere on the page and
  // files pasted into the composer are each uploaded at once (XMLHttpRequest, for its upload
  // progress) and listed in the tray above the textarea until the message that carries them
  // is acknowledged. What the server would refuse for its size is refused here, before any
  // byte is sent. The tray is the draft's: Send takes its finished uploads with the message
  // (the pending copy names them), and gives them back if the server refuses the message.
  var attachments = setupAttachments();
  function setupAttachments() {
    var tray = document.getElementById("attachment-tray");
    var trayList = document.getElementById("attachment-list");
    var itemTemplate = document.getElementById("attachment-item-template");
    var statusLine = document.getElementById("attachment-status");
    var waitLine = document.getElementById("attachment-wait");
    var sendButton = document.getElementById("composer-send");
    var input = document.getElementById("attach-input");
    var overlay = document.getElementById("drop-overlay");
    var t = form.dataset;
    var maxBytes = parseInt(t.attachmentMaxBytes, 10) || 0;
    var maxFiles = parseInt(t.attachmentsMax, 10) || 10;
    var url = t.attachmentsUrl;
    var draft = []; // items in the tray: {el, name, size, state, xhr, data}
    var sending = {}; // client_id -> the items a pending message carries

    function formatSize(n) { // as a file card says it (attachments.human_size): no locale
      if (n < 1024) return n + " B";
      if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
      return (n / (1024 * 1024)).toFixed(1) + " MB";
    }
    function say(text) {
      statusLine.textContent = "";
      // A change the screen reader notices even when the same words come twice.
      requestAnimationFrame(function () { statusLine.textContent = text; });
    }
    function locked() { return textarea.disabled; }
    function uploadingCount() {
      return draft.filter(function (i) { return i.state === "uploading"; }).length;
    }
    function counted() { // what counts towards the per-message limit
      return draft.filter(function (i) { return i.state !== "failed"; }).length;
    }
    function refresh() {
      tray.hidden = draft.length === 0;
      var n = uploadingCount();
      waitLine.hidden = n === 0;
      waitLine.textContent = n === 1 ? waitLine.dataset.textOne : fill(waitLine.dataset.textMany, { count: n });
      if (n) sendButton.setAttribute("aria-disabled", "true");
      else sendButton.removeAttribute("aria-disabled");
    }

    function makeItem(file) {
      var el = itemTemplate.content.firstElementChild.cloneNode(true);
      var item = { el: el, name: file.name, size: file.size, state: "uploading", xhr: null, data: null };
      el.querySelector(".tray-name").textContent = file.name;
      el.querySelector(".tray-name").title = file.name;
      el.querySelector(".tray-size").textContent = formatSize(file.size);
      el.querySelector(".tray-progress").setAttribute("aria-label", fill(t.textUploading, { name: file.name }));
      var remove = el.querySelector(".tray-remove");
      remove.setAttribute("aria-label", fill(t.textRemove, { name: file.name }));
      remove.title = remove.getAttribute("aria-label");
      remove.addEventListener("click", function () { discard(item); });
      draft.push(item);
      trayList.appendChild(el);
      return item;
    }
    function fail(item, message) {
      item.state = "failed";
      item.el.dataset.state = "failed";
      item.el.querySelector(".tray-error").textContent = message;
      say(item.name + ": " + message);
      refresh();
    }

    function add(files) {
      if (locked()) return;
      Array.from(files).forEach(function (file) {
        if (counted() >= maxFiles) {
          fail(makeItem(file), fill(t.textTooMany, { max: maxFiles }));
        } else if (maxBytes && file.size > maxBytes) {
          // Just over the limit reads "4.0 MB … at most 4.0 MB" when rounded: then in bytes.
          var size = formatSize(file.size), max = formatSize(maxBytes);
          if (size === max) { size = file.size + " B"; max = maxBytes + " B"; }
          fail(makeItem(file), fill(t.textTooLarge, { size: size, max: max }));
        } else {
          upload(makeItem(file), file);
        }
      });
      refresh();
      var last = trayList.lastElementChild;
      if (last) last.scrollIntoView({ block: "nearest" });
    }

    // The server's words for a refusal: the API's one error shape,
    // {"error": {"code", "message", "fields": {"file": ["…"]}}}; a field's own words first.
    function errorText(xhr) {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
      var error = data && typeof data === "object" ? data.error : null;
      if (error && typeof error === "object") {
        var fields = error.fields || {};
        for (var key in fields) {
          var v = fields[key];
          if (Array.isArray(v) && v.length) return String(v[0]);
        }
        if (typeof error.message === "string" && error.message) return error.message;
      }
      if (xhr.status === 413) return fill(t.textServerTooLarge, { max: formatSize(maxBytes) });
      return t.textFailed;
    }

    function upload(item, file) {
      var xhr = new XMLHttpRequest();
      item.xhr = xhr;
      var bar = item.el.querySelector(".tray-progress");
      var percent = item.el.querySelector(".tray-percent"); // the bar's value, in figures
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", Parley.csrfToken ? Parley.csrfToken() : "");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.max = e.total;
        bar.value = e.loaded;
        percent.textContent = Math.floor((100 * e.loaded) / e.total) + " %";
      });
      xhr.addEventListener("load", function () {
        item.xhr = null;
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data && data.id != null) {
          item.state = "done";
          item.data = data;
          item.el.dataset.state = "done";
          item.el.dataset.attachmentId = data.id;
          if (data.thumbnail_url) {
            var img = document.createElement("img");
            img.src = data.thumbnail_url;
            img.alt = "";
            var thumb = item.el.querySelector(".tray-thumb");
            thumb.textContent = "";
            thumb.appendChild(img);
          }
          say(fill(t.textUploaded, { name: item.name }));
          refresh();
        } else {
          fail(item, errorText(xhr));
        }
      });
      xhr.addEventListener("error", function () {
        item.xhr = null;
        fail(item, t.textFailed);
      });
      var body = new FormData();
      body.append("file", file, file.name);
      xhr.send(body);
      say(fill(t.textUploading, { name: item.name }));
    }

    // The remove button: an upload on its way is aborted, a finished one deleted on the server
    // (an unsent upload only its uploader can see; the server forgets the rest after a day).
    function discard(item) {
      var i = draft.indexOf(item);
      if (i < 0) return;
      if (item.xhr) item.xhr.abort();
      if (item.state === "done") {
        fetch(url + item.data.id + "/", {
          method: "DELETE",
          credentials: "same-origin",
          headers: { "X-CSRFToken": Parley.csrfToken ? Parley.csrfToken() : "" },
        }).catch(function () { /* the unsent upload expires anyway */ });
      }
      draft.splice(i, 1);
      var hadFocus = item.el.contains(document.activeElement);
      item.el.remove();
      refresh();
      say(fill(t.textRemoved, { name: item.name }));
      if (hadFocus) { // to the neighbour's remove button, else back to the text
        var next = draft[i] || draft[i - 1];
        (next ? next.el.querySelector(".tray-remove") : textarea).focus();
      }
    }

    function detach(item) {
      item.el.remove();
      return item;
    }

    // The attach button and its hidden input.
    document.getElementById("attach-button").addEventListener("click", function () { input.click(); });
    input.addEventListener("change", function () {
      add(input.files);
      input.value = ""; // the same file can be chosen again
      textarea.focus();
    });

    // Paste: files on the clipboard (a screenshot is "image.png") are attached; text that
    // came with them (a spreadsheet's cells) is pasted as well.
    textarea.addEventListener("paste", function (e) {
      var data = e.clipboardData;
      var files = data && data.files ? Array.from(data.files) : [];
      if (!files.length) return;
      if (!data.getData("text/plain")) e.preventDefault();
      var stamp = new Date().toISOString().slice(0, 19).replace("T", " ").replace(/:/g, ".");
      add(files.map(function (f) {
        if (f.name && f.name !== "image.png") return f;
        var ext = (f.type.split("/")[1] || "png").replace("jpeg", "jpg");
        return new File([f], (t.textPasted || "Pasted image") + " " + stamp + "." + ext, { type: f.type });
      }));
    });

    // Drag and drop onto the page: the overlay says where the files go while they are dragged.
    var depth = 0;
    function dragsFiles(e) {
      var types = e.dataTransfer && e.dataTransfer.types;
      return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
    }
    document.addEventListener("dragenter", function (e) {
      if (!dragsFiles(e) || locked()) return;
      depth++;
      overlay.hidden = false;
    });
    document.addEventListener("dragover", function (e) {
      if (!dragsFiles(e)) return;
      e.preventDefault(); // a drop here, not the browser opening the file
      e.dataTransfer.dropEffect = locked() ? "none" : "copy";
    });
    document.addEventListener("dragleave", function (e) {
      if (!dragsFiles(e)) return;
      if (--depth <= 0) {
        depth = 0;
        overlay.hidden = true;
      }
    });
    document.addEventListener("drop", function (e) {
      if (!dragsFiles(e)) return;
      e.preventDefault();
      depth = 0;
      overlay.hidden = true;
      add(e.dataTransfer.files);
      if (!locked()) textarea.focus();
    });

    return {
      add: add,
      uploading: uploadingCount,
      empty: function () { return counted() === 0; },
      ready: function () {
        return draft.filter(function (i) { return i.state === "done"; })
          .map(function (i) { return { id: i.data.id, name: i.data.name || i.name }; });
      },
      showWait: function () { waitLine.hidden = false; }, // (it is shown while any uploads)
      // Send: the finished uploads go with the message (failed ones stay, with their error).
      take: function (clientId) {
        var taken = draft.filter(function (i) { return i.state === "done"; });
        draft = draft.filter(function (i) { return i.state !== "done"; });
        sending[clientId] = taken.map(detach);
        refresh();
      },
      // Acknowledged: stored with the message.
      sent: function (clientId) { delete sending[clientId]; },
      // Refused: back in the tray, nothing lost.
      restore: function (clientId) {
        (sending[clientId] || []).forEach(function (item) {
          draft.push(item);
          trayList.appendChild(item.el);
        });
        delete sending[clientId];
        refresh();
      },
    };
  }

  // ---- Typing (typing.py): at most one {"type": "typing"} every 3 s while the composer has
  // text, a stop when it is emptied; the server sends who is typing (everyone's ids, ours
  // too: the frame is the same for every viewer), at most once a second.
  var typingLine = document.getElementById("typing");
  var TYPING_EVERY_MS = 3000;
  var typingSentAt = 0;
  var typingOn = false; // our last frame was a start
  var typingAllowed = true; // false after a typing_off notice (a room too large)
  var typers = []; // [{id, name}] of the last frame, without us
  function typingInput() {
    if (!typingAllowed || !socketOpen) return;
    if (!textarea.value.trim()) {
      typingStop();
      return;
    }
    var now = Date.now();
    if (typingOn && now - typingSentAt < TYPING_EVERY_MS) return;
    typingOn = true;
    typingSentAt = now;
    send({ type: "typing" });
  }
  function typingStop() {
    if (!typingOn) return;
    typingOn = false;
    send({ type: "typing", stop: true });
  }
  textarea.addEventListener("input", typingInput);
  // Sent: the server drops us from the typers when the message arrives; the next keystroke
  // starts again at once.
  form.addEventListener("htmx:wsConfigSend", function () { typingOn = false; });
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, key) { return key in values ? values[key] : m; });
  }
  function renderTyping() {
    var t = typingLine.dataset;
    var n = typers.length;
    typingLine.textContent = n === 0 ? "" : n === 1 ? fill(t.textOne, { name: typers[0].name })
      : n === 2 ? fill(t.textTwo, { first: typers[0].name, second: typers[1].name }) : t.textMany;
  }
  Parley.on("typing", function (f) {
    if (String(f.room) !== roomId || !Array.isArray(f.users)) return;
    typers = f.users.filter(function (u) { return u && String(u.id) !== myId; });
    renderTyping();
  });
  Parley.on("typing_off", function (f) {
    if (String(f.room) === roomId) typingAllowed = false;
  });
  // Their message arrived: not typing it any more (at once, before the server's next frame).
  function typingPosted(author) {
    var left = typers.filter(function (u) { return String(u.id) !== author; });
    if (left.length !== typers.length) {
      typers = left;
      renderTyping();
    }
  }

  // ---- Edit in place: the source comes from the API (the page only has the HTML).
  var editorTemplate = document.getElementById("editor-template");
  var editing = null; // {article, id, form, input, original, sent, returnFocus}
  var lastAction = ""; // the last non-message frame sent, to route its error

  function mountEditor(ed, article) {
    ed.article = article;
    article.classList.add("is-editing");
    var text = article.querySelector(".message-text");
    if (text) {
      text.hidden = true;
      text.after(ed.form);
    }
  }

  function startEdit(article) {
    if (!article || article.hasAttribute("data-deleted") || article.dataset.author !== myId) return;
    if (editing) {
      if (editing.article === article) { editing.input.focus(); return; }
      closeEditor(false);
    }
    var id = messageId(article);
    var el = editorTemplate.content.firstElementChild.cloneNode(true);
    var input = el.querySelector("textarea");
    input.id = "edit-" + id;
    el.querySelector("label").htmlFor = input.id;
    input.readOnly = true;
    var ed = { id: id, form: el, input: input, original: null, sent: false, returnFocus: document.activeElement };
    editing = ed;
    mountEditor(ed, article);
    input.focus();
    input.addEventListener("keydown", function (e) {
      if (e.isComposing) return;
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); saveEdit(ed); }
      else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); closeEditor(true); }
    });
    el.addEventListener("submit", function (e) { e.preventDefault(); saveEdit(ed); });
    el.querySelector(".editor-cancel").addEventListener("click", function () { closeEditor(true); });
    fetch("/api/rooms/" + roomId + "/messages/" + id + "/", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) {
        if (!r.ok) throw new Error("message " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (editing !== ed) return;
        ed.original = data.body;
        input.value = data.body;
        input.readOnly = false;
        input.setSelectionRange(input.value.length, input.value.length);
        input.rows = Math.min(8, Math.max(2, input.value.split("\n").length));
      })
      .catch(function () {
        if (editing === ed) ed.form.querySelector(".editor-error").textContent = texts.textLoadFailed;
      });
  }

  function saveEdit(ed) {
    if (ed !== editing || ed.original === null) return;
    var body = ed.input.value;
    if (body === ed.original) { closeEditor(true); return; }
    ed.sent = true;
    ed.form.querySelector(".editor-error").textContent = "";
    ed.form.querySelector(".editor-status").textContent = texts.textSaving || "";
    lastAction = "edit";
    send({ type: "edit", id: ed.id, body: body });
  }

  // The article being edited was replaced by a newer version.
  function editorFollows(old, article) {
    var ed = editing;
    var saved = ed.sent && old.dataset.edited !== article.dataset.edited;
    if (saved || article.hasAttribute("data-deleted")) {
      editing = null;
      restoreFocusAfterEdit(ed);
      return;
    }
    // Somebody reacted meanwhile: keep the editor, with its text and caret.
    var had = document.activeElement === ed.input;
    var start = ed.input.selectionStart, end = ed.input.selectionEnd;
    mountEditor(ed, article);
    if (had) {
      ed.input.focus({ preventScroll: true });
      ed.input.setSelectionRange(start, end);
    }
  }

  function closeEditor(restore) {
    var ed = editing;
    if (!ed) return;
    editing = null;
    ed.form.remove();
    var text = ed.article.querySelector(".message-text");
    if (text) text.hidden = false;
    ed.article.classList.remove("is-editing");
    if (restore) restoreFocusAfterEdit(ed);
  }

  // Back where the edit started (the composer after Up; the composer too when the Edit
  // button has gone with the article's old version).
  function restoreFocusAfterEdit(ed) {
    var back = ed.returnFocus;
    if (back && back !== document.body && back.isConnected) back.focus({ preventScroll: true });
    else textarea.focus({ preventScroll: true });
  }

  // ---- Delete, after a confirmation dialog.
  var deleteDialog = document.getElementById("delete-dialog");
  var deleting = null; // {id, returnFocus}
  function askDelete(article, opener) {
    deleting = { id: messageId(article), returnFocus: opener };
    deleteDialog.returnValue = "";
    deleteDialog.showModal();
  }
  deleteDialog.addEventListener("close", function () {
    var d = deleting;
    deleting = null;
    if (!d) return;
    if (deleteDialog.returnValue === "delete") {
      if (editing && editing.id === d.id) closeEditor(false);
      lastAction = "delete";
      send({ type: "delete", id: d.id });
      textarea.focus({ preventScroll: true }); // the message is about to go
    } else if (d.returnFocus && d.returnFocus.isConnected) {
      d.returnFocus.focus({ preventScroll: true });
    }
  });

  // ---- Reactions: a click toggles yours; the picker offers a dozen common emoji and a
  // search over the full list (emoji_all, shipped in the page as JSON).
  function toggleReaction(article, emoji) {
    var mine = Array.from(article.querySelectorAll(".reaction")).some(function (r) {
      return r.dataset.emoji === emoji && hasUser(r, myId);
    });
    lastAction = "react";
    send({ type: mine ? "unreact" : "react", id: messageId(article), emoji: emoji });
  }

  var picker = document.getElementById("emoji-picker");
  var pickerSearch = document.getElementById("emoji-search");
  var pickerCommon = picker.querySelector("[data-emoji-common]");
  var pickerAll = picker.querySelector("[data-emoji-all]");
  var pickerHeading = picker.querySelector("[data-emoji-all-heading]");
  var pickerNone = picker.querySelector("[data-emoji-none]");
  var pickerFor = null; // {articleId, returnKey}
  var pickerBuilt = false;

  function buildPicker() {
    if (pickerBuilt) return;
    pickerBuilt = true;
    var data = [];
    try { data = JSON.parse(document.getElementById("emoji-data").textContent) || []; } catch (err) { data = []; }
    var names = {};
    var fragment = document.createDocumentFragment();
    (Array.isArray(data) ? data : []).forEach(function (pair) {
      var emoji = pair[0], name = pair[1] || "";
      names[emoji] = name;
      var b = document.createElement("button");
      b.type = "button";
      b.className = "emoji-option";
      b.dataset.emoji = emoji;
      b.dataset.name = name.toLowerCase();
      b.title = name;
      b.setAttribute("aria-label", name || emoji);
      b.textContent = emoji;
      fragment.appendChild(b);
    });
    pickerAll.appendChild(fragment);
    pickerCommon.querySelectorAll(".emoji-option").forEach(function (b) {
      var name = names[b.dataset.emoji];
      if (name) { b.title = name; b.setAttribute("aria-label", name); }
    });
  }

  function visibleOptions() {
    return Array.from(picker.querySelectorAll(".emoji-option")).filter(function (b) {
      return !b.hidden && !b.parentElement.hidden;
    });
  }

  function filterPicker() {
    var q = pickerSearch.value.trim().toLowerCase();
    pickerCommon.hidden = !!q;
    pickerHeading.hidden = !!q;
    var shown = 0;
    pickerAll.querySelectorAll(".emoji-option").forEach(function (b) {
      b.hidden = !!q && b.dataset.name.indexOf(q) < 0 && b.dataset.emoji !== q;
      if (!b.hidden) shown++;
    });
    pickerNone.classList.toggle("hidden", shown > 0);
  }

  function openPicker(article, opener) {
    buildPicker();
    pickerFor = { articleId: article.id, returnKey: focusKey(opener, article) };
    pickerSearch.value = "";
    filterPicker();
    picker.showModal();
    var r = opener.getBoundingClientRect();
    var w = picker.offsetWidth, h = picker.offsetHeight;
    var left = Math.min(Math.max(8, r.right - w), window.innerWidth - w - 8);
    var top = r.bottom + 6;
    if (top + h > window.innerHeight - 8) top = Math.max(8, r.top - h - 6);
    picker.style.left = Math.max(8, left) + "px";
    picker.style.top = top + "px";
    pickerSearch.focus();
  }

  function pick(emoji) {
    var target = pickerFor && document.getElementById(pickerFor.articleId);
    picker.close();
    if (target && !target.hasAttribute("data-deleted")) toggleReaction(target, emoji);
  }

  picker.addEventListener("close", function () {
    var f = pickerFor;
    pickerFor = null;
    var article = f && document.getElementById(f.articleId);
    if (article) refocus(article, f.returnKey);
  });
  picker.addEventListener("click", function (e) {
    var option = e.target.closest(".emoji-option");
    if (option) { pick(option.dataset.emoji); return; }
    if (e.target === picker) { // the backdrop
      var r = picker.getBoundingClientRect();
      if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) picker.close();
    }
  });
  pickerSearch.addEventListener("input", filterPicker);
  picker.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { // even from a search box with text in it (which would only clear)
      e.preventDefault();
      picker.close();
      return;
    }
    var options = visibleOptions();
    if (e.target === pickerSearch) {
      if (e.key === "Enter") {
        e.preventDefault();
        if (options.length) pick(options[0].dataset.emoji);
      } else if (e.key === "ArrowDown" && options.length) {
        e.preventDefault();
        options[0].focus();
      }
      return;
    }
    var i = options.indexOf(e.target);
    if (i < 0) return;
    var step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 8, ArrowUp: -8 }[e.key];
    if (e.key === "Home") step = -i;
    if (e.key === "End") step = options.length - 1 - i;
    if (step === undefined) return;
    e.preventDefault();
    var j = i + step;
    if (j < 0) pickerSearch.focus();
    else options[Math.min(j, options.length - 1)].focus();
  });

  // ---- The image viewer: a thumbnail (a button: Enter and Space too) opens the full-size
  // image in a modal dialog; Escape, Close or a click beside it closes it, and focus goes
  // back to the thumbnail (found again by its URL if its article was replaced meanwhile).
  var viewer = document.getElementById("attachment-viewer");
  var viewerImage = document.getElementById("viewer-image");
  var viewerFor = null; // {articleId, key}
  function openViewer(article, thumb) {
    var name = thumb.dataset.name || "";
    viewerFor = { articleId: article.id, key: focusKey(thumb, article) };
    viewerImage.src = thumb.dataset.viewer;
    viewerImage.alt = name;
    document.getElementById("viewer-name").textContent = name;
    var download = document.getElementById("viewer-download");
    download.href = thumb.dataset.viewer;
    download.setAttribute("download", name);
    viewer.showModal();
    document.getElementById("viewer-close").focus();
  }
  document.getElementById("viewer-close").addEventListener("click", function () { viewer.close(); });
  viewer.addEventListener("click", function (e) {
    // The backdrop, or the dark stage around the image.
    if (e.target === viewer || e.target.classList.contains("viewer-stage")) viewer.close();
  });
  viewer.addEventListener("close", function () {
    var f = viewerFor;
    viewerFor = null;
    viewerImage.removeAttribute("src");
    var article = f && document.getElementById(f.articleId);
    if (article) refocus(article, f.key);
    else if (f) scroller.focus({ preventScroll: true }); // deleted meanwhile
  });

  // ---- Clicks in the timeline (one delegated listener: articles come and go).
  var activeArticle = null; // touch screens: a tap shows that message's actions
  list.addEventListener("click", function (e) {
    var t = e.target;
    if (t.closest("[data-older-url]")) { loadOlder(); return; }
    var article = t.closest("#message-list > article");
    if (!article) return;
    var button = t.closest("button");
    if (!button) {
      if (!t.closest("a, textarea, input, form")) {
        if (activeArticle) activeArticle.classList.remove("is-active");
        activeArticle = article;
        article.classList.add("is-active");
      }
      return;
    }
    if (button.classList.contains("attachment-image")) openViewer(article, button);
    else if (button.classList.contains("reaction")) toggleReaction(article, button.dataset.emoji);
    else if (button.classList.contains("reply-quote")) jumpTo(button.dataset.jump);
    else if (button.dataset.action === "reply") startReply(article);
    else if (button.dataset.action === "react") openPicker(article, button);
    else if (button.dataset.action === "edit") startEdit(article);
    else if (button.dataset.action === "delete") askDelete(article, button);
    else if (button.dataset.action === "unread") markUnreadFrom(article);
  });

  // The newer history's button sits after the list (the list holds only articles).
  scroller.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-newer-url]")) loadNewer();
  });

  // ---- The socket's life.
  chat.addEventListener("htmx:wsConnecting", function () {
    if (status.dataset.state !== "offline") setStatus("connecting", status.dataset.textConnecting || "Connecting…");
  });
  var socketOpen = false;
  chat.addEventListener("htmx:wsOpen", function (e) {
    socket = e.detail.socketWrapper;
    socketOpen = true;
    if (Parley.setStream) Parley.setStream("open");
    setStatus("connected", status.dataset.textConnected || "Connected");
    resume();
    if (Parley.presenceSocket) Parley.presenceSocket(send); // presence dots and activity
    scheduleRead();
    // Anything unacknowledged is sent again: the server stores each client_id once.
    Object.keys(pending).forEach(transmit);
  });
  chat.addEventListener("htmx:wsClose", function (e) {
    socketOpen = false;
    live = false;
    typingOn = false; // a new socket starts afresh; the old line would go stale
    typers = [];
    renderTyping();
    var code = e.detail.event.code;
    if (Parley.setStream) Parley.setStream(code === 4401 || code === 4403 || code === 4404 ? "closed" : "reconnecting");
    Object.keys(pending).forEach(function (id) { setPendingState(pending[id], "failed"); });
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) {
      setStatus("reconnecting", status.dataset.textReconnecting || "Reconnecting…");
    } else if (code === 4403) {
      // Removed from the group, or the room was deleted: nothing more comes, nothing can be sent.
      setStatus("forbidden", status.dataset.textForbidden || "You no longer have access to this room");
      lockComposer();
      if (Parley.forgetRoom) Parley.forgetRoom(roomId);
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
  Parley.on("signed-out", function () { // the page reloads into the login page
    setStatus("closed", status.dataset.textUnauthenticated || "Signed out — reload to log in");
    lockComposer();
  });
  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }
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
    if (document.visibilityState !== "visible") return;
    resume();
    refreshDayLabels();
    scheduleRead();
  });

  var errorBox = document.getElementById("composer-error");
  chat.addEventListener("htmx:wsAfterMessage", function () {
    if (document.getElementById("chat-reload").dataset.reload) {
      window.location.reload();
      return;
    }
    settlePending();
    // An error fragment replaces #composer-error: route it to what it answers.
    var error = document.getElementById("composer-error");
    if (error !== errorBox) {
      errorBox = error;
      var forEdit = editing && editing.sent && error.textContent.trim() &&
        (error.dataset.messageId ? parseInt(error.dataset.messageId, 10) === editing.id : lastAction === "edit");
      if (!refusePending(error) && forEdit) {
        editing.sent = false;
        editing.form.querySelector(".editor-status").textContent = "";
        editing.form.querySelector(".editor-error").textContent = error.textContent;
        error.textContent = "";
        editing.input.focus();
      }
    }
    var f = frame;
    frame = null;
    if (f ? f.stick : !newerBox()) {
      scrollToBottom();
    } else {
      restoreAnchor(f.anchor);
      if (f.arrived) pillNew = true;
    }
    updatePill();
    if (live) readSent = maxVersion; // read by the server as it came
    scheduleRead();
  });

  // ---- Membership and the read pointer. #chat has data-member while the viewer is a member
  // (posting in a public room joins it: the sync that follows says so) and data-last-read,
  // their pointer when the page was rendered; the per-user frames move both.
  var isMember = chat.hasAttribute("data-member");
  var pointer = num(chat, "lastRead");
  var readSent = pointer; // the pointer as far as this page knows (sent or heard)
  var readPaused = false; // after "Mark as unread from here", until…
  var pauseLeftBottom = false; // …the reader scrolls back down to the bottom,
  var pauseBlurred = false; // …or comes back to the tab.
  var readTimer = null;
  var dividerFor = null; // the id of the article showing "New messages"

  function setMember(yes) {
    isMember = yes;
    chat.toggleAttribute("data-member", yes);
  }
  function learnPointer(p) {
    if (typeof p !== "number") return;
    pointer = p;
    readSent = p;
  }
  Parley.on("sync", function (f) {
    var c = (f.rooms || {})[roomId];
    setMember(!!c);
    if (c) learnPointer(c.pointer);
    scheduleRead();
  });
  Parley.on("unread", function (f) {
    if (String(f.room) !== roomId) return;
    setMember(true);
    learnPointer(f.pointer);
    scheduleRead();
  });
  Parley.on("room", function (f) {
    if (String(f.room) !== roomId) return;
    if (chat.dataset.kind !== "dm" && typeof f.name === "string" && f.name) {
      document.getElementById("room-name").textContent = f.name;
      if (Parley.setBaseTitle) Parley.setBaseTitle(f.name + " · Parley");
    }
    var topic = document.getElementById("room-topic");
    if (topic && typeof f.topic === "string") {
      topic.textContent = f.topic;
      topic.hidden = !f.topic;
    }
  });

  function lastArticle() {
    var n = list.lastElementChild;
    while (n && !isArticle(n)) n = n.previousElementSibling;
    return n;
  }
  function newestVisible() {
    var a = lastArticle();
    if (!a) return true;
    var box = scroller.getBoundingClientRect();
    var r = a.getBoundingClientRect();
    return r.top < box.bottom - 8 && r.bottom > box.top;
  }
  function tabActive() { return document.visibilityState === "visible" && document.hasFocus(); }

  // Auto-read: while the newest message is in view in a focused, visible tab, the page reads
  // the room live. One {"type": "active", "seq": N} moves the pointer to the newest version
  // this socket has and asks the server to read each new message as it comes (it moves the
  // pointer itself: no frame per message either way); {"type": "inactive"} ends it, at once
  // when the reader looks away. A sync or unread frame that shows the pointer behind what
  // the page has (a message read while the server could not) sends "active" again.
  var live = false; // an "active" frame is in force on this socket
  function wantLive() {
    return isMember && !readPaused && socketOpen && tabActive() && !newerBox() && newestVisible();
  }
  function stopLive() {
    live = false;
    if (socketOpen) send({ type: "inactive" });
  }
  function scheduleRead() {
    if (live && !wantLive()) stopLive(); // no message is read that is not seen
    if (readTimer) return; // a throttle, not a debounce: a busy room still gets read
    readTimer = setTimeout(maybeRead, 300);
  }
  function maybeRead() {
    readTimer = null;
    if (!wantLive()) {
      if (live) stopLive();
      return;
    }
    if (live && maxVersion <= readSent) return;
    live = true;
    readSent = maxVersion;
    send({ type: "active", seq: maxVersion });
  }
  function resumeReading() {
    readPaused = false;
    pauseLeftBottom = false;
    pauseBlurred = false;
    scheduleRead();
  }
  function readerMoved() {
    if (readPaused) {
      if (!nearBottom()) pauseLeftBottom = true;
      else if (pauseLeftBottom) resumeReading();
    }
    scheduleRead();
  }
  window.addEventListener("blur", function () {
    if (readPaused) pauseBlurred = true;
    scheduleRead();
  });
  window.addEventListener("focus", function () {
    if (readPaused && pauseBlurred) resumeReading();
    else scheduleRead();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && readPaused) pauseBlurred = true;
    scheduleRead();
  });

  // The pointer without the socket (it is down): the same service, over HTTP.
  function postRead(seq, force) {
    var data = new URLSearchParams({ seq: String(seq) });
    if (force) data.set("force", "on");
    fetch(chat.dataset.readUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRFToken": Parley.csrfToken ? Parley.csrfToken() : "" },
      body: data,
    }).catch(function () { /* the next read sends it again */ });
  }

  // "Mark as unread from here": the pointer goes back to just before this message, and
  // auto-read waits until the reader comes back (bottom again, or the tab again).
  function markUnreadFrom(article) {
    var seq = num(article, "seq");
    if (!seq || !isMember) return;
    var target = seq - 1;
    readPaused = true;
    live = false; // the forced read ends live reading on the server too
    pauseLeftBottom = !nearBottom();
    pauseBlurred = false;
    pointer = target;
    readSent = target;
    stopSeeking();
    placeDivider(article);
    if (socketOpen) send({ type: "read", seq: target, force: true });
    else postRead(target, true);
  }

  // ---- "New messages": inside the first unread article (the list holds only articles).
  // The page opens with enough messages to start just before the first unread (the view
  // loads up to 200); when even those are all newer than the pointer, the first unread is
  // above them: the page scrolls to the top and loads older pages until it is found
  // ("seeking"), then jumps to it. Meanwhile nothing is marked read (the newest is not in
  // view), and no divider is shown anywhere it would be wrong.
  var seeking = false;
  var seekPages = 0;
  var SEEK_PAGES_MAX = 20;
  var UNREAD_CAP = 100; // the server's counts stop there
  var unreadAtRender = num(chat, "unreadCount");
  function unreadAbove() {
    var first = firstArticle();
    return isMember && !!olderBox() && !!first && num(first, "seq") > pointer + 1;
  }
  function loadedUnread() {
    var n = 0;
    for (var a = firstArticle(); a; a = nextArticle(a)) {
      if (num(a, "seq") > pointer && a.dataset.author !== myId && !a.hasAttribute("data-deleted")) n++;
    }
    return n;
  }
  // Is the first unread message on the page? Yes once the page reaches back to the pointer,
  // or once it holds as many unread messages as the page was rendered with (the pointer may
  // well be behind the viewer's own messages, which are never unread).
  function firstUnreadLoaded() {
    if (!unreadAbove()) return true;
    return unreadAtRender < UNREAD_CAP && loadedUnread() >= unreadAtRender;
  }
  function stopSeeking() {
    seeking = false;
    chat.removeAttribute("data-seeking-unread");
  }
  // An older page is in: the divider goes on it when the first unread is there and none is
  // placed yet (or the page was looking for it).
  function olderPlaced(fresh) {
    if (!isMember) return;
    if (!firstUnreadLoaded()) {
      if (!seeking) return;
      if (++seekPages < SEEK_PAGES_MAX) {
        setTimeout(loadOlder, 0);
        return;
      }
      // Too far back to be sure: the oldest unread loaded is the best guess.
    }
    var first = firstUnreadAfter(pointer);
    if (seeking) {
      stopSeeking();
      if (first) {
        placeDivider(first);
        jumpToDivider();
      }
    } else if (first && !dividerFor && fresh.indexOf(first) >= 0) {
      placeDivider(first);
    }
  }
  function firstUnreadAfter(p) {
    if (!isMember) return null;
    for (var a = firstArticle(); a; a = nextArticle(a)) {
      if (num(a, "seq") > p && a.dataset.author !== myId && !a.hasAttribute("data-deleted")) return a;
    }
    return null;
  }
  function placeDivider(a) {
    var old = document.getElementById("unread-divider");
    if (old) old.remove();
    var before = dividerFor && document.getElementById(dividerFor);
    dividerFor = a ? a.id : null;
    if (before && before !== a) decorate(before);
    if (!a) return;
    var divider = fromTemplate("unread-divider-template");
    var day = a.querySelector(".day-divider");
    if (day) day.after(divider);
    else a.prepend(divider);
    decorate(a);
  }
  function jumpToDivider() {
    var d = document.getElementById("unread-divider");
    if (!d) return;
    scrollToBottom(); // when everything fits, the newest is in view (and is read)
    var top = d.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    if (top < 0) scroller.scrollTop += top - 8;
  }
  // Someone else's message arrived while this tab cannot read it: the divider goes before
  // it, unless one already marks an unread message.
  function arrivedUnseen(a) {
    if (!isMember || seeking) return; // the first unread is further up
    if (tabActive() && !readPaused && frame && frame.stick) return; // read at once
    var holder = dividerFor && document.getElementById(dividerFor);
    if (holder && num(holder, "seq") > pointer) return;
    placeDivider(a);
  }

  // ---- @mentions: "@" and a few letters in the composer list the room's members (the API),
  // plus @room; arrows and Enter or Tab put "@username " in.
  var mentionBox = null;
  // @room: not in a conversation, and only for owners where the room's policy says so.
  function mayMentionRoom() {
    if (chat.dataset.kind === "dm") return false;
    return chat.dataset.roomMentions !== "owners" || chat.dataset.role === "owner";
  }
  function setupMentions() {
    var box = document.getElementById("mention-list");
    if (!box || !Parley.autocomplete || !chat.dataset.membersUrl) return;
    var cache = {};
    function members(q) {
      var key = q.toLowerCase();
      var hit = cache[key];
      if (hit && Date.now() - hit.at < 60000) return hit.promise;
      var promise = fetch(chat.dataset.membersUrl + "?q=" + encodeURIComponent(q), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (data) { return Array.isArray(data) ? data : (data && data.results) || []; })
        .catch(function () { delete cache[key]; return []; });
      cache[key] = { at: Date.now(), promise: promise };
      return promise;
    }
    mentionBox = Parley.autocomplete(textarea, box, {
      delay: 80,
      context: function (field) {
        var caret = field.selectionStart;
        if (caret !== field.selectionEnd) return null;
        var m = /(^|[^\w@.])@([\w.+-]{0,30})$/.exec(field.value.slice(0, caret));
        if (!m) return null;
        return { query: m[2], start: caret - m[2].length - 1, end: caret };
      },
      load: function (q) {
        return members(q).then(function (rows) {
          var items = rows.filter(function (r) { return String(r.id) !== myId; }).map(function (r) {
            var label = r.name || r.username;
            return { value: r.username, label: label, hint: label !== r.username ? "@" + r.username : "" };
          });
          if (mayMentionRoom() && "room".indexOf(q.toLowerCase()) === 0) {
            items.push({ value: "room", label: "@room", hint: texts.textRoomOption || "" });
          }
          return items;
        });
      },
      insert: function (item, ctx) {
        var v = textarea.value;
        var text = "@" + item.value + " ";
        var after = v.slice(ctx.end).replace(/^ /, "");
        textarea.value = v.slice(0, ctx.start) + text + after;
        var caret = ctx.start + text.length;
        textarea.setSelectionRange(caret, caret);
      },
    });
  }

  function lockComposer() {
    textarea.disabled = true;
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    if (mentionBox) mentionBox.close();
  }

  // ---- The page as served: prepared once; from now on only what arrives is looked at.
  Array.from(list.children).forEach(function (a) {
    if (!isArticle(a)) return;
    var v = versionOf(a);
    if (v > maxVersion) maxVersion = v;
    prepare(a);
    decorate(a);
  });
  // Opened at a message: the page knows the room up to its last seq when it was rendered
  // (read before the messages), so the socket resumes from there, not from the window's
  // newest version (which could be far behind: a replay of everything after it).
  var resumeSeq = num(list, "resumeSeq");
  if (resumeSeq > maxVersion) maxVersion = resumeSeq;
  var firstUnread = null;
  var target = aroundSeq ? list.querySelector('#message-list > article[data-seq="' + aroundSeq + '"]') : null;
  if (target) {
    // Marked for good (not the passing highlight of a reply jump), in view, and focused so
    // that a screen reader starts there.
    target.classList.add("message-target");
    target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
    // The URL's #message-<id> makes the browser scroll it to the top edge as the page
    // finishes loading: centre it again then.
    window.addEventListener("load", function () {
      requestAnimationFrame(function () { if (target.isConnected) target.scrollIntoView({ block: "center" }); });
    }, { once: true });
  } else if (unreadAtRender > 0 && !firstUnreadLoaded()) {
    seeking = true;
    chat.setAttribute("data-seeking-unread", "");
    scroller.scrollTop = 0;
    loadOlder();
  } else if ((firstUnread = firstUnreadAfter(pointer))) {
    placeDivider(firstUnread);
    jumpToDivider();
  } else {
    scrollToBottom();
  }
  updatePill();
  watchOlder();
  watchNewer();
  setupMentions();
  scheduleRead();

  // ---- Read receipts (issue 11): rooms of at most 10 members only (the template says so
  // with #receipt-people). The pointers of the members who send receipts (from the page, then
  // the "receipts" frames: all of the room's at once, at most one a second) decide where the
  // marks go: in a DM, "Seen" under my newest message the other person has read; in a group,
  // each reader's small avatar once, under the newest message at or below their pointer that
  // is not their own. Never for me, and none at all when my own setting is off (the server
  // then sends no frame and the page came with no pointers).
  setupReceipts();
  function setupReceipts() {
    var peopleBox = document.getElementById("receipt-people");
    if (!peopleBox) return;
    var people = {}; // user id -> their small avatar (cloned)
    Array.from(peopleBox.children).forEach(function (el) { people[el.dataset.reader] = el; });
    var reads = null; // user id -> pointer; null: no receipts on this page
    var seenAt = {}; // user id -> when their pointer was heard moving (live frames only)
    var data = document.getElementById("receipts-data");
    if (data && chat.hasAttribute("data-receipts")) reads = pairsToMap(JSON.parse(data.textContent));
    var isDm = chat.dataset.kind === "dm";

    function pairsToMap(pairs) {
      var map = {};
      (pairs || []).forEach(function (p) { map[String(p[0])] = p[1]; });
      return map;
    }
    function articlesNewestFirst() {
      return Array.from(list.children).filter(isArticle).reverse();
    }
    function target(articles, pointer, test) {
      for (var i = 0; i < articles.length; i++) {
        var a = articles[i];
        if (num(a, "seq") <= pointer && test(a)) return a;
      }
      return null;
    }
    function mark() {
      var el = document.createElement("div");
      el.className = "seen-by";
      el.setAttribute("data-testid", "seen-by");
      return el;
    }
    function render() {
      list.querySelectorAll(".seen-by").forEach(function (el) { el.remove(); });
      if (!reads) return;
      var stick = nearBottom();
      var articles = articlesNewestFirst();
      var readers = Object.keys(reads).filter(function (id) { return id !== myId && people[id]; });
      if (isDm) {
        var other = readers[0];
        if (!other) return;
        var mine = target(articles, reads[other], function (a) { return a.dataset.author === myId; });
        if (mine) {
          var seen = mark();
          seen.textContent = texts.textSeen || "Seen";
          if (seenAt[other]) seen.title = (texts.textSeenAt || "Seen at {time}").replace("{time}", fullTime(seenAt[other]));
          mine.appendChild(seen);
        }
      } else {
        var byArticle = new Map();
        readers.forEach(function (id) {
          var a = target(articles, reads[id], function (x) { return x.dataset.author !== id; });
          if (!a) return;
          if (!byArticle.has(a)) byArticle.set(a, []);
          byArticle.get(a).push(id);
        });
        byArticle.forEach(function (ids, a) {
          var names = ids.map(function (id) { return people[id].dataset.name; }).join(", ");
          var label = (texts.textSeenBy || "Seen by {names}").replace("{names}", names);
          var el = mark();
          el.title = label;
          var sr = document.createElement("span");
          sr.className = "sr-only";
          sr.textContent = label;
          el.appendChild(sr);
          ids.forEach(function (id) {
            var avatar = people[id].cloneNode(true);
            avatar.setAttribute("aria-hidden", "true");
            el.appendChild(avatar);
          });
          a.appendChild(el);
        });
      }
      if (stick) scrollToBottom();
    }
    var queued = false;
    function renderSoon() {
      if (queued) return;
      queued = true;
      requestAnimationFrame(function () { queued = false; render(); });
    }
    // New, changed and older articles: a new message of a receipt sender moves their
    // pointer to it (posting reads what came before: services.message_send).
    new MutationObserver(function (changes) {
      var any = false;
      changes.forEach(function (c) {
        c.addedNodes.forEach(function (n) {
          if (!isArticle(n)) return;
          any = true;
          var author = n.dataset.author;
          if (reads && author in reads && num(n, "seq") > reads[author]) reads[author] = num(n, "seq");
        });
        if (c.removedNodes.length) any = true;
      });
      if (any) renderSoon();
    }).observe(list, { childList: true });

    Parley.on("receipts", function (f) {
      if (String(f.room) !== roomId || !Array.isArray(f.reads)) return;
      var fresh = pairsToMap(f.reads);
      var now = new Date();
      Object.keys(fresh).forEach(function (id) {
        if (!reads || !(id in reads) || fresh[id] > reads[id]) seenAt[id] = now;
      });
      // Empty: my own receipts were switched off (I am in the list whenever I send them).
      reads = f.reads.length ? fresh : null;
      renderSoon();
    });
    // After a reconnect, frames may have been missed: read them again (the page's first
    // open came with them).
    var opens = socket ? 1 : 0;
    chat.addEventListener("htmx:wsOpen", function () {
      if (++opens === 1 || !reads || !chat.dataset.receiptsUrl) return;
      fetch(chat.dataset.receiptsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (rows) {
          if (!Array.isArray(rows)) return;
          reads = rows.length ? pairsToMap(rows.map(function (r) { return [r.user, r.last_read_seq]; })) : null;
          renderSoon();
        })
        .catch(function () {});
    });
    render();
  }
})();

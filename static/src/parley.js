// Parley's shared script: small behaviours htmx does not cover, on every page. No framework.
// The signed-in part keeps the user's "what's new" state live: the sidebar's badges, the tab
// title and favicon, notifications. Its numbers come from per-user JSON frames on the page's one
// websocket (the room page's htmx socket, room.js, or /ws/user/ opened here on every other
// page). The room page itself is room.js, which uses window.Parley.
(function () {
  "use strict";

  // Close an open dropdown on Escape or on a click outside it.
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

  // Copy buttons (the API tokens page): data-copy names the field to copy; its
  // data-copy-status element says whether it worked. A field marked data-select-on-focus is
  // selected whole when focused, for copying by hand.
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-copy]") : null;
    if (!button) return;
    var field = document.getElementById(button.dataset.copy);
    if (!field) return;
    var status = document.querySelector('[data-copy-status="' + button.dataset.copy + '"]');
    function say(text) { if (status) status.textContent = text; }
    function byHand() {
      field.focus();
      field.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (err) { copied = false; }
      say(copied ? button.dataset.copiedText : button.dataset.copyFailedText);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { say(button.dataset.copiedText); }, byHand);
    } else {
      byHand();
    }
  });
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("[data-select-on-focus]")) e.target.select();
  });

  var body = document.body;
  var myId = body.dataset.user;
  if (!myId) return; // signed out: nothing more

  var lang = document.documentElement.lang || undefined;
  var chat = document.getElementById("chat"); // the room page
  var currentRoom = chat ? chat.dataset.room : null;
  var Parley = (window.Parley = { myId: myId, currentRoom: currentRoom });

  function each(sel, fn, root) { Array.prototype.forEach.call((root || document).querySelectorAll(sel), fn); }
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    try { return JSON.parse(body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (err) { return ""; }
  }
  Parley.csrfToken = csrfToken;

  // ---- "/" focuses the header's search box, unless one is typing in a field (or a dialog
  // is open). A search results page that loaded more results focuses the first new one.
  var searchInput = document.getElementById("header-search-input");
  function typingInField(el) {
    if (!el || el === body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !/^(button|submit|reset|checkbox|radio|range|color|file|image)$/i.test(el.type));
  }
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.isComposing || e.defaultPrevented) return;
    if (!searchInput || typingInField(document.activeElement) || document.querySelector("dialog[open]")) return;
    e.preventDefault();
    searchInput.focus();
    searchInput.select();
  });
  document.addEventListener("htmx:afterSettle", function () {
    var start = document.querySelector("#search-results [data-page-start]");
    if (!start) return;
    start.removeAttribute("data-page-start");
    var link = start.querySelector("a");
    if (link) link.focus();
  });

  // ---- Listeners for frames: room.js subscribes to what concerns the open room.
  var handlers = {};
  Parley.on = function (type, fn) { (handlers[type] = handlers[type] || []).push(fn); };
  function emit(type, data) { (handlers[type] || []).forEach(function (fn) { fn(data); }); }

  // ---- Counts. One map from the frames (room id -> unread, mentions, muted, notify, pointer,
  // kind); the sidebar's entries, the title and the favicon are drawn from it. Until the first
  // "sync" the server-rendered numbers stand.
  var counts = {};
  var synced = false;
  Parley.counts = counts;

  function badge(n) { return n >= 100 ? "99+" : n > 0 ? String(n) : ""; }
  function int(v) { return parseInt(v, 10) || 0; }

  function sidebarLinks() { return document.querySelectorAll("#sidebar-nav a[data-room-id]"); }
  function sidebarLink(id) { return document.querySelector('#sidebar-nav a[data-room-id="' + id + '"]'); }

  function renderedCounts(link) {
    return {
      unread: int(link.dataset.unreadCount),
      mentions: int(link.dataset.mentionCount),
      muted: link.hasAttribute("data-muted"),
      kind: link.dataset.kind,
    };
  }

  var srTexts = null;
  function applyEntry(link, c) {
    var unread = c.unread || 0, mentions = c.mentions || 0, muted = !!c.muted;
    link.dataset.unreadCount = unread;
    link.dataset.mentionCount = mentions;
    link.toggleAttribute("data-unread", unread > 0 && !muted);
    link.toggleAttribute("data-muted", muted);
    link.toggleAttribute("data-dot", muted && unread > 0);
    var u = link.querySelector(".badge-unread");
    if (u) u.textContent = muted ? "" : badge(unread);
    var m = link.querySelector(".badge-mention");
    if (m) m.textContent = mentions ? "@" + badge(mentions) : "";
    var sr = link.querySelector("[data-sr-counts]");
    if (sr) {
      var nav = document.getElementById("sidebar-nav");
      srTexts = srTexts || {
        // "{count} unread": the number's place is the translation's (Russian puts it last).
        unread: nav.dataset.textUnread || "{count} unread",
        mentions: nav.dataset.textMentions || "{count} mentions",
        mutedUnread: nav.dataset.textMutedUnread || "unread messages, muted",
      };
      // A muted room shows a dot, not a number: its text says so.
      sr.textContent = (unread && !muted ? ", " + srTexts.unread.replace("{count}", badge(unread)) : "") +
        (unread && muted ? ", " + srTexts.mutedUnread : "") +
        (mentions ? ", " + srTexts.mentions.replace("{count}", badge(mentions)) : "");
    }
  }

  function applyAll() {
    each("#sidebar-nav a[data-room-id]", function (link) {
      var c = counts[link.dataset.roomId];
      if (c) applyEntry(link, c);
      else if (!synced) counts[link.dataset.roomId] = renderedCounts(link);
    });
    if (currentRoom) {
      var link = sidebarLink(currentRoom);
      if (link) link.setAttribute("aria-current", "page");
    }
    updateTotal();
  }

  // "(N) " before the title, a dot on the favicon and on the phone's menu button.
  // The page's own title: what the server rendered, less exactly the "(N) " it put before it
  // (N is on the <title> element; a room may well be named "(3) something").
  var titleEl = document.querySelector("title");
  var renderedTotal = titleEl ? int(titleEl.dataset.unreadTotal) : 0;
  var renderedPrefix = renderedTotal ? "(" + renderedTotal + ") " : "";
  var baseTitle = renderedPrefix && document.title.indexOf(renderedPrefix) === 0
    ? document.title.slice(renderedPrefix.length) : document.title;
  var favicon = document.getElementById("favicon");
  Parley.setBaseTitle = function (title) { baseTitle = title; updateTotal(); };
  function total() {
    var n = 0;
    Object.keys(counts).forEach(function (id) {
      var c = counts[id];
      if (!c.muted) n += c.unread || 0;
    });
    return n;
  }
  Parley.total = total;
  function updateTotal() {
    var n = total();
    var title = (n ? "(" + n + ") " : "") + baseTitle;
    if (document.title !== title) document.title = title;
    if (favicon) {
      var href = n ? favicon.dataset.hrefUnread : favicon.dataset.hrefRead;
      if (href && favicon.getAttribute("href") !== href) favicon.setAttribute("href", href);
    }
    var dot = document.querySelector("#sidebar-open .menu-dot");
    if (dot) dot.hidden = !n;
    var sr = document.querySelector("#sidebar-open [data-sidebar-open-count]");
    if (sr) sr.textContent = n ? " (" + n + ")" : "";
  }

  // ---- The sidebar's structure: refetched on a "sidebar" frame (a room came or went, a
  // rename, a setting), then the live counts go back on. One request at a time; a frame that
  // arrives meanwhile asks for one more.
  var sidebarLoading = false, sidebarAgain = false;
  function refetchSidebar() {
    if (isSignedOut) return;
    if (sidebarLoading) { sidebarAgain = true; return; }
    sidebarLoading = true;
    fetch("/sidebar/" + (currentRoom ? "?current=" + encodeURIComponent(currentRoom) : ""), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (r) {
        // A redirect is to the login page (the session is gone): never swap that in.
        if (r.redirected) {
          signedOut();
          throw new Error("sidebar: signed out");
        }
        if (!r.ok) throw new Error("sidebar " + r.status);
        return r.text();
      })
      .then(function (html) {
        var holder = document.getElementById("sidebar-content");
        if (!holder) return;
        var focusedId = document.activeElement && holder.contains(document.activeElement) &&
          document.activeElement.dataset ? document.activeElement.dataset.roomId : null;
        var scroll = holder.scrollTop;
        holder.innerHTML = html;
        holder.scrollTop = scroll;
        applyAll();
        if (focusedId) {
          var link = sidebarLink(focusedId);
          if (link) link.focus({ preventScroll: true });
        }
        emit("sidebar-updated", null);
      })
      .catch(function () { /* the next frame or reconnect brings it */ })
      .finally(function () {
        sidebarLoading = false;
        if (sidebarAgain) { sidebarAgain = false; refetchSidebar(); }
      });
  }
  Parley.refetchSidebar = refetchSidebar;

  Parley.forgetRoom = function (id) {
    delete counts[id];
    var link = sidebarLink(id);
    if (link && link.parentElement) link.parentElement.remove();
    updateTotal();
  };

  // ---- Frames. Both sockets hand every JSON text frame to Parley.receive.
  function onSync(f) {
    var rooms = f.rooms || {};
    Object.keys(counts).forEach(function (id) { delete counts[id]; });
    Object.keys(rooms).forEach(function (id) { counts[id] = rooms[id]; });
    synced = true;
    setStream("live"); // open, and the counts are the database's
    // A sidebar that lists other rooms than the membership has (an event missed while
    // disconnected) is fetched again: the badges can never stay wrong.
    var listed = Array.prototype.map.call(sidebarLinks(), function (a) { return a.dataset.roomId; }).sort();
    var known = Object.keys(rooms).sort();
    if (listed.join(",") !== known.join(",")) refetchSidebar();
    applyAll();
  }

  function onUnread(f) {
    var id = String(f.room);
    var c = counts[id] || (counts[id] = {});
    c.unread = f.unread;
    c.mentions = f.mentions;
    if ("muted" in f) c.muted = f.muted;
    if ("pointer" in f) c.pointer = f.pointer;
    var link = sidebarLink(id);
    if (link) applyEntry(link, c);
    else if (synced) refetchSidebar(); // a room the sidebar does not show yet
    updateTotal();
  }

  function onRoom(f) {
    var link = sidebarLink(f.room);
    if (link && typeof f.name === "string" && link.dataset.kind !== "dm") {
      link.dataset.title = f.name;
      var t = link.querySelector(".sidebar-title");
      if (t) t.textContent = f.name;
    }
  }

  function onDirectory() { refreshDirectory(); }

  Parley.receive = function (f) {
    if (!f || typeof f.type !== "string") return;
    if (f.type === "sync") onSync(f);
    else if (f.type === "unread") onUnread(f);
    else if (f.type === "sidebar") refetchSidebar();
    else if (f.type === "room") onRoom(f);
    else if (f.type === "notify") onNotify(f);
    else if (f.type === "directory") onDirectory(f);
    emit(f.type, f);
  };
  // A text frame: JSON (the per-user stream) when it starts with "{"; true when it was.
  Parley.receiveText = function (text) {
    if (typeof text !== "string" || text.charAt(0) !== "{") return false;
    var f;
    try { f = JSON.parse(text); } catch (err) { return true; }
    Parley.receive(f);
    return true;
  };

  function setStream(state) { body.dataset.stream = state; }
  Parley.setStream = setStream;

  // The session ended (a fetch of ours was sent to the login page): no socket keeps
  // retrying and nothing more is fetched; the page reloads, which shows the login page.
  var isSignedOut = false;
  function signedOut() {
    if (isSignedOut) return;
    isSignedOut = true;
    setStream("closed");
    emit("signed-out", null);
    if (stopUserSocket) stopUserSocket();
    window.location.reload();
  }
  Parley.signedOut = signedOut;

  // ---- Notifications: opt-in (the permission prompt only after a click), kept in
  // localStorage per browser. Shown for "notify" frames unless this room is open in a focused
  // tab. Tabs of the same browser agree through a BroadcastChannel: the tab looking at the
  // room says "seen" and the others drop theirs (the tag dedupes the rest).
  var NOTIFY_KEY = "parley:notifications";
  var canNotify = "Notification" in window;
  var notesPending = {};
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("parley") : null;
  if (channel) {
    channel.onmessage = function (e) {
      var d = e.data || {};
      if (d.type === "seen" && notesPending[d.message]) {
        clearTimeout(notesPending[d.message]);
        delete notesPending[d.message];
      }
    };
  }
  function notificationsOn() {
    try { return localStorage.getItem(NOTIFY_KEY) === "on"; } catch (err) { return false; }
  }
  function lookingAt(room) {
    return currentRoom && String(room) === String(currentRoom) && document.hasFocus() &&
      document.visibilityState === "visible";
  }
  Parley.lookingAt = lookingAt;

  function onNotify(f) {
    if (lookingAt(f.room)) {
      if (channel) channel.postMessage({ type: "seen", message: f.message });
      return;
    }
    if (!canNotify || !notificationsOn() || Notification.permission !== "granted") return;
    if (notesPending[f.message]) return;
    notesPending[f.message] = setTimeout(function () {
      delete notesPending[f.message];
      showNotification(f);
    }, 250);
  }

  function showNotification(f) {
    var n;
    try {
      n = new Notification(f.title || "Parley", { body: f.body || "", tag: "parley-" + f.message });
    } catch (err) {
      return; // Android Chrome wants a service worker for this
    }
    n.onclick = function () {
      window.focus();
      // The room opened at the message (?around=); a page already showing that room has it
      // live, and stays as it is.
      if (f.url) {
        var target = new URL(f.url, location.href);
        if (location.pathname !== target.pathname) location.href = target.href;
      }
      n.close();
    };
  }

  var notifyButton = document.getElementById("notifications-toggle");
  function drawNotifyButton() {
    if (!notifyButton) return;
    if (!canNotify) { notifyButton.hidden = true; return; }
    notifyButton.hidden = false;
    var label = notifyButton.querySelector("[data-label]");
    var d = notifyButton.dataset;
    if (Notification.permission === "denied") {
      label.textContent = d.textBlocked;
      notifyButton.disabled = true;
      notifyButton.removeAttribute("aria-pressed");
      return;
    }
    notifyButton.disabled = false;
    var on = notificationsOn() && Notification.permission === "granted";
    notifyButton.setAttribute("aria-pressed", on ? "true" : "false");
    label.textContent = on ? d.textDisable : d.textEnable;
  }
  if (notifyButton) {
    notifyButton.addEventListener("click", function () {
      var on = notificationsOn() && Notification.permission === "granted";
      try { localStorage.setItem(NOTIFY_KEY, on ? "off" : "on"); } catch (err) { /* private mode */ }
      if (!on && Notification.permission === "default") {
        Promise.resolve(Notification.requestPermission()).then(drawNotifyButton, drawNotifyButton);
      }
      drawNotifyButton();
    });
    drawNotifyButton();
  }

  // ---- The directory (home page): refetched on a "directory" frame (no polling); its
  // relative times are recomputed here.
  function refreshDirectory() {
    var box = document.getElementById("room-list");
    if (!box || !box.dataset.directoryUrl) return;
    fetch(box.dataset.directoryUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.redirected) {
          signedOut();
          throw new Error("directory: signed out");
        }
        if (!r.ok) throw new Error("directory " + r.status);
        return r.text();
      })
      .then(function (html) {
        var current = document.getElementById("room-list");
        if (!current) return;
        var tpl = document.createElement("template");
        tpl.innerHTML = html.trim();
        var fresh = tpl.content.firstElementChild;
        if (!fresh || fresh.id !== "room-list") return;
        current.replaceWith(fresh);
        if (window.htmx) htmx.process(fresh);
        relativeTimes();
      })
      .catch(function () { /* the next change brings it */ });
  }
  Parley.refreshDirectory = refreshDirectory;

  var relFormat = "RelativeTimeFormat" in Intl ? new Intl.RelativeTimeFormat(lang, { numeric: "always" }) : null;
  var justNow = (document.getElementById("room-list") || {}).dataset;
  function relativeTimes() {
    if (!relFormat) return;
    var now = Date.now();
    each("time[data-relative]:not([data-empty])", function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) return;
      var s = Math.max(0, (now - at) / 1000);
      var text;
      if (s < 60) text = (justNow && justNow.textJustNow) || "just now";
      else if (s < 3600) text = relFormat.format(-Math.floor(s / 60), "minute");
      else if (s < 86400) text = relFormat.format(-Math.floor(s / 3600), "hour");
      else if (s < 86400 * 30) text = relFormat.format(-Math.floor(s / 86400), "day");
      else if (s < 86400 * 365) text = relFormat.format(-Math.floor(s / (86400 * 30)), "month");
      else text = relFormat.format(-Math.floor(s / (86400 * 365)), "year");
      if (t.textContent !== text) t.textContent = text;
    });
  }
  if (document.querySelector("time[data-relative]")) {
    relativeTimes();
    setInterval(relativeTimes, 30000); // a clock, not a request
  }
  // A room you are in moved on (a count grew: someone wrote): its activity is "just now",
  // without asking the server. The other rooms' times are as of the last directory fetch.
  var lastUnread = {};
  Parley.on("unread", function (f) {
    var grew = (f.unread || 0) > (lastUnread[f.room] || 0);
    lastUnread[f.room] = f.unread || 0;
    var t = grew && document.querySelector('#room-list li[data-room-id="' + f.room + '"] time[data-relative]');
    if (!t) return;
    t.setAttribute("datetime", new Date().toISOString());
    t.removeAttribute("data-empty");
    relativeTimes();
  });
  Parley.on("sync", function (f) {
    Object.keys(f.rooms || {}).forEach(function (id) { lastUnread[id] = f.rooms[id].unread || 0; });
  });
  // Joined or left elsewhere (another tab, posting): the directory's Join buttons follow.
  Parley.on("sidebar", refreshDirectory);

  // ---- The phone drawer: the sidebar slides over the page; focus stays inside it while it
  // is open, Escape or a tap on the backdrop closes it.
  var sidebarEl = document.getElementById("sidebar");
  var openButton = document.getElementById("sidebar-open");
  var closeButton = document.getElementById("sidebar-close");
  var backdrop = document.getElementById("sidebar-backdrop");
  var pageEl = document.getElementById("page");
  var desktop = window.matchMedia("(min-width: 48rem)");

  function drawerOpen() { return sidebarEl && sidebarEl.hasAttribute("data-open"); }
  function focusables(root) {
    return Array.prototype.filter.call(
      root.querySelectorAll("a[href], button:not([disabled]), input, [tabindex]:not([tabindex='-1'])"),
      function (el) { return !el.hidden && el.offsetParent !== null; }
    );
  }
  function openDrawer() {
    if (!sidebarEl || drawerOpen()) return;
    sidebarEl.setAttribute("data-open", "");
    sidebarEl.setAttribute("role", "dialog");
    sidebarEl.setAttribute("aria-modal", "true");
    backdrop.hidden = false;
    if (pageEl) pageEl.inert = true;
    openButton.setAttribute("aria-expanded", "true");
    var target = sidebarEl.querySelector('a[aria-current="page"]') || focusables(sidebarEl)[0];
    if (target) target.focus();
  }
  function closeDrawer(restore) {
    if (!sidebarEl || !drawerOpen()) return;
    sidebarEl.removeAttribute("data-open");
    sidebarEl.removeAttribute("role");
    sidebarEl.removeAttribute("aria-modal");
    backdrop.hidden = true;
    if (pageEl) pageEl.inert = false;
    openButton.setAttribute("aria-expanded", "false");
    if (restore !== false) openButton.focus();
  }
  Parley.closeDrawer = closeDrawer;
  if (sidebarEl && openButton) {
    openButton.addEventListener("click", openDrawer);
    if (closeButton) closeButton.addEventListener("click", function () { closeDrawer(); });
    backdrop.addEventListener("click", function () { closeDrawer(); });
    sidebarEl.addEventListener("keydown", function (e) {
      if (!drawerOpen()) return;
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); closeDrawer(); return; }
      if (e.key !== "Tab") return;
      var items = focusables(sidebarEl);
      if (!items.length) return;
      var first = items[0], last = items[items.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    var onWidth = function () { if (desktop.matches) closeDrawer(false); };
    if (desktop.addEventListener) desktop.addEventListener("change", onWidth);
  }

  // ---- Quick switcher: Ctrl/Cmd+K. The sidebar's entries, then the public rooms you have
  // not joined (from the directory, fetched when it opens); type letters, arrows choose,
  // Enter opens.
  var switcher = document.getElementById("switcher");
  var switcherInput = document.getElementById("switcher-input");
  var switcherList = document.getElementById("switcher-list");
  var switcherNone = switcher && switcher.querySelector("[data-switcher-none]");
  var switcherOpenButton = document.getElementById("switcher-open");
  var isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  var switcherItems = [];
  var switcherShown = [];
  var switcherActive = 0;
  var publicRooms = null; // [{id, title, url, kind:"public", joined:false}] from the directory

  function sidebarItems() {
    return Array.prototype.map.call(sidebarLinks(), function (a) {
      return {
        id: a.dataset.roomId,
        title: a.dataset.title || a.textContent.trim(),
        url: a.getAttribute("href"),
        kind: a.dataset.kind,
        unread: int(a.dataset.unreadCount),
        joined: true,
      };
    });
  }
  function loadPublicRooms() {
    fetch("/rooms/", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        var tpl = document.createElement("template");
        tpl.innerHTML = html;
        publicRooms = Array.prototype.map.call(tpl.content.querySelectorAll("li[data-room-id]"), function (li) {
          return { id: li.dataset.roomId, title: li.dataset.roomName, url: li.dataset.roomUrl, kind: "public", joined: false };
        });
        if (switcher.open) buildSwitcherItems();
      })
      .catch(function () { publicRooms = publicRooms || []; });
  }
  function buildSwitcherItems() {
    var items = sidebarItems();
    var have = {};
    items.forEach(function (i) { have[i.id] = true; });
    (publicRooms || []).forEach(function (r) { if (!have[r.id]) items.push(r); });
    switcherItems = items;
    filterSwitcher();
  }
  // Lower is better: a prefix, then the start of a word, then anywhere, then the letters in order.
  function score(title, q) {
    var t = title.toLowerCase();
    if (!q) return 0;
    if (t.indexOf(q) === 0) return 1;
    var i = t.indexOf(q);
    if (i > 0 && /[\s\-_.#@,]/.test(t.charAt(i - 1))) return 2;
    if (i > 0) return 3;
    var at = 0;
    for (var k = 0; k < q.length; k++) {
      at = t.indexOf(q.charAt(k), at);
      if (at < 0) return -1;
      at++;
    }
    return 4;
  }
  function filterSwitcher() {
    var q = switcherInput.value.trim().toLowerCase().replace(/^[#@]/, "");
    switcherShown = switcherItems
      .map(function (item, n) { return { item: item, s: score(item.title, q), n: n }; })
      .filter(function (x) { return x.s >= 0; })
      .sort(function (a, b) { return a.s - b.s || a.n - b.n; })
      .map(function (x) { return x.item; })
      .slice(0, 50);
    switcherActive = 0;
    drawSwitcher();
  }
  function drawSwitcher() {
    switcherList.textContent = "";
    var texts = switcher.dataset;
    switcherShown.forEach(function (item, n) {
      var li = document.createElement("li");
      li.id = "switcher-option-" + n;
      li.className = "switcher-option";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", n === switcherActive ? "true" : "false");
      li.dataset.url = item.url;
      li.dataset.roomId = item.id;
      var icon = document.createElement("span");
      icon.className = "sidebar-icon";
      icon.setAttribute("aria-hidden", "true");
      icon.textContent = item.kind === "dm" ? "@" : item.kind === "private" ? "🔒" : "#";
      var name = document.createElement("span");
      name.className = "min-w-0 flex-1 truncate";
      name.textContent = item.title;
      li.append(icon, name);
      if (!item.joined || item.unread) {
        var hint = document.createElement("span");
        hint.className = "option-hint";
        hint.textContent = !item.joined ? texts.textJoin || "not joined" : badge(item.unread);
        li.append(hint);
      }
      switcherList.append(li);
    });
    switcherNone.classList.toggle("hidden", switcherShown.length > 0);
    var active = document.getElementById("switcher-option-" + switcherActive);
    if (active) {
      switcherInput.setAttribute("aria-activedescendant", active.id);
      active.scrollIntoView({ block: "nearest" });
    } else {
      switcherInput.removeAttribute("aria-activedescendant");
    }
  }
  function moveSwitcher(step) {
    if (!switcherShown.length) return;
    switcherActive = (switcherActive + step + switcherShown.length) % switcherShown.length;
    each(".switcher-option", function (li, n) {
      li.setAttribute("aria-selected", n === switcherActive ? "true" : "false");
    }, switcherList);
    var active = document.getElementById("switcher-option-" + switcherActive);
    switcherInput.setAttribute("aria-activedescendant", active.id);
    active.scrollIntoView({ block: "nearest" });
  }
  function openChosen(n) {
    var item = switcherShown[n];
    if (!item) return;
    switcher.close();
    if (item.url) location.href = item.url;
  }
  function openSwitcher() {
    if (!switcher || switcher.open) return;
    closeDrawer(false);
    switcherInput.value = "";
    buildSwitcherItems();
    switcher.showModal();
    switcherInput.focus();
    loadPublicRooms();
  }
  Parley.openSwitcher = openSwitcher;
  if (switcher) {
    var returnFocus = null;
    document.addEventListener("keydown", function (e) {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && (e.key === "k" || e.key === "K")) {
        e.preventDefault();
        if (switcher.open) { switcher.close(); return; }
        returnFocus = document.activeElement;
        openSwitcher();
      }
    });
    if (switcherOpenButton) {
      switcherOpenButton.hidden = false;
      var label = switcherOpenButton.querySelector("[data-shortcut-label]");
      if (label && isMac) label.textContent = "⌘K";
      switcherOpenButton.addEventListener("click", function () {
        returnFocus = switcherOpenButton;
        openSwitcher();
      });
    }
    switcherInput.addEventListener("input", filterSwitcher);
    switcherInput.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown") { e.preventDefault(); moveSwitcher(1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); moveSwitcher(-1); }
      else if (e.key === "Enter") { e.preventDefault(); openChosen(switcherActive); }
    });
    switcherList.addEventListener("click", function (e) {
      var li = e.target.closest("[role=option]");
      if (li) openChosen(parseInt(li.id.slice("switcher-option-".length), 10));
    });
    switcherList.addEventListener("mousemove", function (e) {
      var li = e.target.closest("[role=option]");
      if (!li) return;
      var n = parseInt(li.id.slice("switcher-option-".length), 10);
      if (n !== switcherActive) moveSwitcher(n - switcherActive);
    });
    switcher.addEventListener("click", function (e) {
      if (e.target !== switcher) return; // the backdrop
      var r = switcher.getBoundingClientRect();
      if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) switcher.close();
    });
    switcher.addEventListener("close", function () {
      if (returnFocus && returnFocus.isConnected && returnFocus !== body) returnFocus.focus({ preventScroll: true });
      returnFocus = null;
    });
  }

  // ---- A listbox of suggestions under (or over) a text field: the composer's @mentions and
  // the members field. ``options.context(field)`` says what is being typed ({query, start,
  // end}, or null for nothing to suggest); ``options.load(query)`` resolves to items
  // ({value, label, hint}); ``options.insert(item, ctx)`` puts the choice in. Arrow keys
  // move, Enter or Tab insert, Escape closes; the field points at the active option with
  // aria-activedescendant. ``handleKey(e)`` is exported for fields with key handlers of their
  // own (the composer sends on Enter): it returns true when it used the key.
  var acCount = 0;
  Parley.autocomplete = function (field, list, options) {
    var state = { items: [], active: 0, ctx: null, seq: 0, timer: null, open: false };
    var prefix = "ac" + ++acCount + "-option-";
    field.setAttribute("aria-autocomplete", "list");
    field.setAttribute("aria-controls", list.id);
    field.setAttribute("aria-expanded", "false");
    if (field.tagName === "INPUT") field.setAttribute("role", "combobox");
    else field.setAttribute("aria-haspopup", "listbox");

    function close() {
      state.open = false;
      state.items = [];
      list.hidden = true;
      list.textContent = "";
      field.setAttribute("aria-expanded", "false");
      field.removeAttribute("aria-activedescendant");
    }
    function draw() {
      list.textContent = "";
      state.items.forEach(function (item, n) {
        var li = document.createElement("li");
        li.id = prefix + n;
        li.className = "ac-option";
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", n === state.active ? "true" : "false");
        li.dataset.value = item.value;
        var name = document.createElement("span");
        name.className = "ac-option-name";
        name.textContent = item.label;
        li.append(name);
        if (item.hint) {
          var hint = document.createElement("span");
          hint.className = "ac-option-hint";
          hint.textContent = item.hint;
          li.append(hint);
        }
        list.append(li);
      });
      state.open = state.items.length > 0;
      list.hidden = !state.open;
      field.setAttribute("aria-expanded", state.open ? "true" : "false");
      if (state.open) field.setAttribute("aria-activedescendant", prefix + state.active);
      else field.removeAttribute("aria-activedescendant");
    }
    function move(step) {
      state.active = (state.active + step + state.items.length) % state.items.length;
      each(".ac-option", function (li, n) {
        li.setAttribute("aria-selected", n === state.active ? "true" : "false");
      }, list);
      field.setAttribute("aria-activedescendant", prefix + state.active);
      var li = document.getElementById(prefix + state.active);
      if (li) li.scrollIntoView({ block: "nearest" });
    }
    function choose(n) {
      var item = state.items[n];
      var ctx = state.ctx;
      close();
      if (item && ctx) options.insert(item, ctx);
      field.focus();
    }
    function update() {
      var ctx = options.context(field);
      state.ctx = ctx;
      if (!ctx) { close(); return; }
      var seq = ++state.seq;
      clearTimeout(state.timer);
      state.timer = setTimeout(function () {
        Promise.resolve(options.load(ctx.query)).then(function (items) {
          if (seq !== state.seq) return; // typed on meanwhile
          state.items = (items || []).slice(0, 8);
          state.active = 0;
          draw();
        }, function () { if (seq === state.seq) close(); });
      }, options.delay || 0);
    }
    function handleKey(e) {
      if (!state.open || e.isComposing) return false;
      if (e.key === "ArrowDown") { e.preventDefault(); move(1); return true; }
      if (e.key === "ArrowUp") { e.preventDefault(); move(-1); return true; }
      if ((e.key === "Enter" && !e.shiftKey) || e.key === "Tab") {
        e.preventDefault();
        choose(state.active);
        return true;
      }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(); return true; }
      return false;
    }
    field.addEventListener("input", update);
    field.addEventListener("click", update);
    field.addEventListener("keyup", function (e) {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Home" || e.key === "End") update();
    });
    field.addEventListener("blur", function () { setTimeout(close, 150); });
    // mousedown, not click: the field keeps its focus (and its caret) while you pick.
    list.addEventListener("mousedown", function (e) {
      var li = e.target.closest("[role=option]");
      if (!li) return;
      e.preventDefault();
      choose(parseInt(li.id.slice(prefix.length), 10));
    });
    return { handleKey: handleKey, close: close, isOpen: function () { return state.open; } };
  };

  // The members fields (home: a new private group, comma-separated; settings: one username):
  // suggestions from the page's <datalist> of people, for the name being typed.
  function memberPicker(input) {
    if (input.dataset.pickerReady) return;
    var datalist = input.list || document.getElementById(input.getAttribute("list"));
    if (!datalist) return;
    input.dataset.pickerReady = "1";
    var people = Array.prototype.map.call(datalist.options, function (o) {
      var name = o.textContent.trim();
      return { value: o.value, label: name || o.value, hint: name && name !== o.value ? "@" + o.value : "" };
    });
    input.removeAttribute("list"); // ours instead of the browser's (which knows no commas)
    var list = document.createElement("ul");
    list.id = input.id + "-suggestions";
    list.className = "ac-list ac-below";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    input.insertAdjacentElement("afterend", list);
    var single = input.hasAttribute("data-single");
    var picker = Parley.autocomplete(input, list, {
      context: function (field) {
        var caret = field.selectionStart || 0;
        var before = field.value.slice(0, caret);
        var start = single ? 0 : Math.max(before.lastIndexOf(",") + 1, 0);
        var token = before.slice(start).replace(/^\s+/, "");
        if (!token) return null;
        var end = field.value.indexOf(",", caret);
        return { query: token.toLowerCase(), start: caret - token.length, end: end < 0 ? field.value.length : end };
      },
      load: function (q) {
        var chosen = input.value.toLowerCase().split(/[\s,]+/);
        return people.filter(function (p) {
          return (p.value.toLowerCase().indexOf(q) === 0 || p.label.toLowerCase().indexOf(q) >= 0) &&
            chosen.indexOf(p.value.toLowerCase()) < 0;
        });
      },
      insert: function (item, ctx) {
        var v = input.value;
        var tail = single ? "" : ", ";
        var after = v.slice(ctx.end).replace(/^\s*,?\s*/, "");
        input.value = v.slice(0, ctx.start) + item.value + tail + after;
        var caret = ctx.start + item.value.length + tail.length;
        input.setSelectionRange(caret, caret);
      },
    });
    input.addEventListener("keydown", function (e) { picker.handleKey(e); });
  }
  each("input[data-member-picker]", memberPicker);
  // A form htmx swapped in (the create form with its errors) gets its picker too.
  document.addEventListener("htmx:load", function (e) {
    var root = e.detail && e.detail.elt;
    if (root && root.querySelectorAll) each("input[data-member-picker]", memberPicker, root);
  });

  // ---- Presence dots ([data-testid^=presence-], components/presence_dot.html). The page tells
  // its socket which users' dots it shows ("presence-watch", at most 500) and gets their states,
  // then each change; it also says, at most once a minute, that the page is being used
  // ("activity": keys, pointer, focus, scroll), which keeps its user "online" (else "away").
  var presenceSend = null;
  var PRESENCE_MAX = 500, ACTIVITY_MS = 60000;
  var lastActivity = 0;
  function presenceIds() {
    var seen = {}, ids = [];
    each('[data-testid^="presence-"]', function (el) {
      var id = parseInt(el.getAttribute("data-testid").slice("presence-".length), 10);
      if (id && !seen[id] && ids.length < PRESENCE_MAX) { seen[id] = true; ids.push(id); }
    });
    return ids;
  }
  function watchPresence() {
    if (presenceSend) presenceSend({ type: "presence-watch", users: presenceIds() });
  }
  Parley.watchPresence = watchPresence;
  function applyPresence(id, state) {
    each('[data-testid="presence-' + id + '"]', function (el) {
      el.dataset.presence = state;
      var label = el.getAttribute("data-label-" + state) || state;
      el.setAttribute("aria-label", label);
      el.setAttribute("title", label);
    });
  }
  Parley.on("presence", function (f) {
    if (f.states) Object.keys(f.states).forEach(function (id) { applyPresence(id, f.states[id]); });
    else if (f.user) applyPresence(f.user, f.presence);
  });
  Parley.on("sidebar-updated", watchPresence); // new DM entries, new dots
  function activity() {
    var now = Date.now();
    if (!presenceSend || now - lastActivity < ACTIVITY_MS) return;
    lastActivity = now;
    presenceSend({ type: "activity" });
  }
  ["keydown", "pointerdown", "pointermove", "focus", "scroll", "wheel", "touchstart"].forEach(function (type) {
    window.addEventListener(type, activity, { capture: true, passive: true });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") activity();
  });
  // The page's socket (room.js's htmx socket, or /ws/user/ here) calls this when it opens:
  // a (re)opened socket counts as used and is told the dots again.
  Parley.presenceSocket = function (send) {
    presenceSend = send;
    lastActivity = Date.now();
    watchPresence();
  };

  // ---- The user's stream on every page but a room (whose htmx socket carries it): a plain
  // WebSocket, reconnecting with backoff; signed out (4401) or refused (4403) is final.
  var stopUserSocket = null;
  function userSocket() {
    var retries = 0, ws = null, timer = null, stopped = false;
    stopUserSocket = function () {
      stopped = true;
      clearTimeout(timer);
      if (ws) ws.close(1000);
    };
    function url() { return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/user/"; }
    function connect() {
      clearTimeout(timer);
      timer = null;
      if (stopped || (ws && ws.readyState <= 1)) return;
      setStream("connecting");
      try { ws = new WebSocket(url()); } catch (err) { schedule(); return; }
      ws.onopen = function () {
        retries = 0;
        setStream("open");
        var open = ws;
        Parley.presenceSocket(function (f) { if (open.readyState === 1) open.send(JSON.stringify(f)); });
      };
      ws.onmessage = function (e) { Parley.receiveText(e.data); };
      ws.onclose = function (e) {
        ws = null;
        if (e.code === 4401 || e.code === 4403 || e.code === 4404) {
          stopped = true;
          setStream("closed");
          return;
        }
        setStream("reconnecting");
        schedule(e.code === 4429 ? 30000 : 0);
      };
    }
    function schedule(min) {
      if (stopped || timer) return;
      var delay = Math.min(30000, 1000 * Math.pow(2, retries++));
      delay = Math.max(min || 0, delay * (0.5 + Math.random() / 2));
      timer = setTimeout(connect, delay);
    }
    window.addEventListener("online", function () { if (!ws) connect(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !ws) connect();
    });
    // Leaving the page closes it cleanly; coming back from the back/forward cache reopens it.
    window.addEventListener("pagehide", function () { stopped = true; if (ws) ws.close(1000); });
    window.addEventListener("pageshow", function (e) {
      if (!e.persisted) return;
      stopped = false;
      retries = 0;
      connect();
    });
    connect();
  }
  if (!chat) userSocket();

  applyAll();
})();

/*! crmrules.js: shows the on-site messages crmrules rules decided for this visitor, once. Text only. Apache-2.0
 *
 *  <script src="https://SIDECAR/v1/crmrules.js" data-write-key="WRITE_KEY" defer></script>
 *
 * With Segment analytics.js / analytics-next on the page (load this after it), the visitor's ids are analytics'
 * own and analytics sends the events. Without it, this script keeps its own anonymous id and sends page views
 * itself; window.crmrules.track(name, props) / .identify(userId, traits) send the rest.
 * Options: data-write-key / data-host, or window.crmrulesConfig = {writeKey, host}.
 */
(function (w, d) {
  "use strict";
  if (w.crmrules && w.crmrules.version) return;
  var VERSION = "1.0.0";
  var me = d.currentScript, data = (me && me.dataset) || {}, cfg = w.crmrulesConfig || {};
  var key = cfg.writeKey || data.writeKey;
  // The sidecar is where this file came from (behind a proxy path too): .../v1/crmrules.js → ...
  var host = cfg.host || data.host || (me && me.src ? me.src.replace(/\/v1\/crmrules\.js([?#].*)?$/, "") : "");
  var api = String(host).replace(/\/+$/, "") + "/v1";
  var enc = encodeURIComponent;

  function ls(k, v) {
    try { return v === undefined ? localStorage.getItem(k) : localStorage.setItem(k, v); } catch (e) { return null; }
  }
  function ajs(name) { // analytics-next keeps its ids JSON-encoded, in localStorage or a cookie
    var v = ls(name), m;
    if (v == null && (m = d.cookie.match("(?:^|; )" + name + "=([^;]*)"))) v = decodeURIComponent(m[1]);
    try { v = JSON.parse(v); } catch (e) { /* a bare string */ }
    return v == null || v === "" ? null : String(v);
  }
  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0; return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }
  function post(path, body) { // text/plain and no custom header: a "simple" request, no CORS preflight
    body.writeKey = key;
    return fetch(api + path, { method: "POST", body: JSON.stringify(body), keepalive: true, credentials: "omit",
                               headers: { "Content-Type": "text/plain" } });
  }

  // ---- standalone: no analytics on the page
  function ownIds() {
    var anon = ls("crmrules_anonymous_id") || ajs("ajs_anonymous_id");
    if (!anon) ls("crmrules_anonymous_id", anon = uuid());
    return { anonymousId: anon, userId: ls("crmrules_user_id") || ajs("ajs_user_id") };
  }
  function send(type, fields) {
    var ids = ownIds(), now = new Date().toISOString(), tz;
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { tz = undefined; }
    var page = { path: location.pathname, url: location.href, title: d.title, referrer: d.referrer,
                 search: location.search };
    var msg = { type: type, messageId: "crm-" + uuid(), anonymousId: ids.anonymousId, userId: ids.userId,
                timestamp: now, sentAt: now,
                context: { page: page, userAgent: navigator.userAgent, locale: navigator.language, timezone: tz,
                           library: { name: "crmrules.js", version: VERSION } } };
    for (var k in fields) msg[k] = fields[k];
    if (type === "page" && !msg.properties) msg.properties = page;
    return post("/" + type.charAt(0), msg);
  }

  // ---- the visitor's ids: analytics' own when it is there
  function analyticsIds(done) {
    var a = w.analytics, finished = false;
    if (!a || typeof a.ready !== "function") return done(null, false);
    function finish(u) {
      if (finished) return;
      finished = true;
      var ids = u && typeof u.anonymousId === "function" ? { anonymousId: u.anonymousId(), userId: u.id() }
        : { anonymousId: ajs("ajs_anonymous_id"), userId: ajs("ajs_user_id") };
      done(ids, true);
    }
    setTimeout(finish, 4000);
    try {
      a.ready(function () {
        var u = w.analytics && typeof w.analytics.user === "function" ? w.analytics.user() : null;
        if (u && typeof u.then === "function") u.then(finish, function () { finish(); }); else finish(u);
      });
    } catch (e) { finish(); }
  }

  // ---- showing messages
  function el(tag, css, text) {
    var e = d.createElement(tag);
    e.style.cssText = css;
    if (text != null) e.textContent = String(text); // never innerHTML: message text is text
    return e;
  }
  var shelf;
  function show(m) {
    if (!m || typeof m.id !== "string" || (!m.subject && !m.body)) return false;
    if (!shelf) {
      shelf = el("div", "position:fixed;z-index:2147483647;left:0;right:0;bottom:20px;display:flex;" +
                        "flex-direction:column;align-items:center;gap:10px;pointer-events:none");
      shelf.className = "crmrules-onsite-shelf";
      d.body.appendChild(shelf);
    }
    var box = el("div", "position:relative;box-sizing:border-box;width:min(92vw,440px);padding:16px 46px 16px 18px;" +
                        "background:#fff;color:#1f2328;border:1px solid #d0d7de;border-radius:12px;" +
                        "box-shadow:0 10px 32px rgba(0,0,0,.22);font:15px/1.5 system-ui,-apple-system,'Segoe UI'," +
                        "'Apple SD Gothic Neo','Noto Sans KR',sans-serif;white-space:pre-line;text-align:left;" +
                        "pointer-events:auto");
    box.className = "crmrules-onsite";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("data-crmrules-message", m.id);
    if (m.locale) box.setAttribute("lang", m.locale);
    if (m.subject) box.appendChild(el("strong", "display:block;margin-bottom:4px;font-size:16px", m.subject));
    if (m.body) box.appendChild(el("div", "", m.body));
    var x = el("button", "position:absolute;top:8px;right:10px;border:0;background:none;font-size:22px;" +
                         "line-height:1;cursor:pointer;color:#57606a;padding:4px", "\u00d7");
    x.type = "button";
    x.setAttribute("aria-label", "닫기 / close");
    x.onclick = function () { box.remove(); };
    box.appendChild(x);
    shelf.appendChild(box);
    return true;
  }
  d.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && shelf) while (shelf.firstChild) shelf.removeChild(shelf.firstChild);
  });

  function mark(state) { d.documentElement.setAttribute("data-crmrules-onsite", String(state)); }
  function check(ids) {
    if (!key || !ids || !(ids.anonymousId || ids.userId)) { mark(0); return Promise.resolve(0); }
    var q = "?writeKey=" + enc(key) + (ids.anonymousId ? "&anonymousId=" + enc(ids.anonymousId) : "") +
            (ids.userId ? "&userId=" + enc(ids.userId) : "");
    return fetch(api + "/onsite" + q, { credentials: "omit", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
      .then(function (res) {
        var shown = (res.messages || []).filter(show).map(function (m) { return m.id; });
        if (!shown.length) return 0;
        return post("/onsite/shown", { anonymousId: ids.anonymousId, userId: ids.userId, ids: shown })
          .then(function () { return shown.length; }, function () { return shown.length; });
      })
      .then(function (n) { mark(n); return n; }, function () { mark("error"); return 0; });
  }

  function start() {
    if (!key) { mark("no-write-key"); if (w.console) console.warn("crmrules.js: set data-write-key"); return; }
    analyticsIds(function (ids, withAnalytics) {
      if (!withAnalytics) { send("page", {}); ids = ownIds(); }
      check(ids);
    });
  }

  w.crmrules = {
    version: VERSION,
    check: function () { return new Promise(function (ok) { analyticsIds(function (ids, a) { ok(check(a ? ids : ownIds())); }); }); },
    page: function (props) { return send("page", props ? { properties: props } : {}); },
    track: function (event, props) { return send("track", { event: event, properties: props || {} }); },
    identify: function (userId, traits) {
      if (userId) ls("crmrules_user_id", String(userId));
      return send("identify", { userId: userId || null, traits: traits || {} });
    }
  };
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start); else start();
})(window, document);

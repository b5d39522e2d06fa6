/*
 * shop_reco beacon: reports what the server cannot see, in small JSON batches.
 *
 *   <script src="{% static 'shop_reco/beacon.js' %}" data-endpoint="{% url 'shop_reco:beacon' %}" defer></script>
 *
 * - rec_click: a click on an element carrying data-reco-token (slot and product from data-reco-slot and
 *   data-reco-product on it or its nearest ancestor), sent at once so it survives the navigation.
 * - rec_impression: a [data-reco-slot] container at least half visible for the first time on this page,
 *   with context {"keys": [...], "seen": true}.
 * - any element with data-reco-event="wishlist" (or a custom type) and data-reco-product, on click.
 *
 * Every event gets a client_event_id (a UUID), so a retried batch is stored once. The shopper is never named
 * in the payload: the server takes it from the visitor cookie and the session. Nothing is sent when the
 * browser asks not to be tracked.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || "/reco/events/";
  var MAX_BATCH = 20;
  var queue = [];
  var timer = null;

  if (navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.globalPrivacyControl === true) {
    return;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function send(events) {
    if (!events.length) return;
    var body = JSON.stringify({ events: events });
    // text/plain: a body sendBeacon can send without a CORS preflight; the server reads it as JSON.
    var blob = new Blob([body], { type: "text/plain;charset=UTF-8" });
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, blob)) return;
    if (window.fetch) {
      fetch(endpoint, {
        method: "POST", body: body, keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json" }
      }).catch(function () {});
    }
  }

  function flush() {
    if (timer) { clearTimeout(timer); timer = null; }
    while (queue.length) send(queue.splice(0, MAX_BATCH));
  }

  function enqueue(event) {
    event.client_event_id = uuid();
    queue.push(event);
    if (queue.length >= MAX_BATCH) flush();
    else if (!timer) timer = setTimeout(flush, 2000);
  }

  function attr(el, name) {
    var holder = el.closest("[" + name + "]");
    return holder ? holder.getAttribute(name) : "";
  }

  document.addEventListener("click", function (e) {
    var target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    var link = target.closest("[data-reco-token]");
    if (link) {
      queue.push({
        event_type: "rec_click", client_event_id: uuid(),
        product_key: attr(link, "data-reco-product"), slot: attr(link, "data-reco-slot"),
        token: link.getAttribute("data-reco-token")
      });
      flush(); // the page is probably about to unload
      return;
    }
    var custom = target.closest("[data-reco-event]");
    if (custom) {
      enqueue({ event_type: custom.getAttribute("data-reco-event"), product_key: attr(custom, "data-reco-product") });
    }
  }, true);

  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        var slot = entry.target;
        observer.unobserve(slot); // once per page view
        var keys = Array.prototype.map.call(slot.querySelectorAll("[data-reco-product]"), function (el) {
          return el.getAttribute("data-reco-product");
        });
        var context = { keys: keys.slice(0, 24), seen: true };
        var version = slot.getAttribute("data-reco-version");
        if (version) context.version = version;
        enqueue({ event_type: "rec_impression", slot: slot.getAttribute("data-reco-slot"), context: context });
      });
    }, { threshold: 0.5 });
    var observe = function () {
      // Containers only: links inside a slot repeat data-reco-slot.
      document.querySelectorAll("[data-reco-slot]:not([data-reco-token])").forEach(function (el) {
        observer.observe(el);
      });
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", observe);
    else observe();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flush();
  });
  window.addEventListener("pagehide", flush);
})();

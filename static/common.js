/* Shared by every page: the string catalogues, the language switcher and
   the one request helper. Written as plain ES5 so that old phones run it.

   The kiosk serves each page with <html lang> already set to the language
   it chose (?lang=, the switcher's cookie, or Accept-Language), and with
   the page's strings in that language inlined (#kiosk-data), together with
   the lists the kiosk owns: its languages and the notice fields. Other
   catalogues are fetched when the person switches. This script fills
   every element marked data-i18n. Elements
   filled from script (Kiosk.fill) keep their key and values, so switching
   language re-renders the whole page in place and focus stays where it is.
   An element marked data-dual also shows the projector's second language. */
(function () {
  'use strict';
  var catalogues = {};
  var lang = document.documentElement.lang || 'en';
  var lang2 = '';
  // prefix is what comes before the phone paths in this page's address:
  // nothing on a LAN, the room's path on a relay (<prefix>/j/<token>,
  // <prefix>/k). Phone pages reach the kiosk only below it.
  var pm = /^(.*)\/(j\/[^\/]*|k)$/.exec(location.pathname);
  var prefix = pm ? pm[1] : '';
  var data = {};
  try { data = JSON.parse(document.getElementById('kiosk-data').textContent); } catch (e) { data = {}; }
  if (data.catalogue) { catalogues[data.lang || lang] = data.catalogue; }

  function translate(l, key, vars) {
    var c = catalogues[l] || {};
    var s = c[key];
    if (s === undefined) { s = (catalogues.en || {})[key]; }
    if (s === undefined) { return key; }
    return s.replace(/\{(\w+)\}/g, function (m, name) {
      return vars && vars[name] !== undefined ? String(vars[name]) : m;
    });
  }

  // t returns the string for key in the page's language, {name}s filled.
  function t(key, vars) { return translate(lang, key, vars); }

  function render(el) {
    var key = el.getAttribute('data-i18n');
    var vars = el.kioskVars;
    if (el.hasAttribute('data-dual') && lang2 && lang2 !== lang) {
      var first = document.createElement('span');
      first.className = 'lang1';
      first.textContent = translate(lang, key, vars);
      var second = document.createElement('span');
      second.className = 'lang2';
      second.setAttribute('lang', lang2);
      second.textContent = translate(lang2, key, vars);
      el.textContent = '';
      el.appendChild(first);
      el.appendChild(document.createTextNode(' '));
      el.appendChild(second);
    } else {
      el.textContent = translate(lang, key, vars);
    }
  }

  var attrs = ['alt', 'aria-label'];

  // apply fills every element marked data-i18n (text) or data-i18n-alt,
  // data-i18n-aria-label (attributes) under root.
  function apply(root) {
    root = root || document;
    var els = root.querySelectorAll('[data-i18n]');
    for (var i = 0; i < els.length; i++) { render(els[i]); }
    for (var a = 0; a < attrs.length; a++) {
      els = root.querySelectorAll('[data-i18n-' + attrs[a] + ']');
      for (var j = 0; j < els.length; j++) {
        els[j].setAttribute(attrs[a], t(els[j].getAttribute('data-i18n-' + attrs[a])));
      }
    }
  }

  // fill shows key (with vars) in el, and keeps showing it in the page's
  // language after a switch.
  function fill(el, key, vars) {
    el.kioskVars = vars;
    el.setAttribute('data-i18n', key);
    render(el);
  }

  // plain shows text that comes from the lecturer, not the catalogue.
  function plain(el, text) {
    el.removeAttribute('data-i18n');
    el.kioskVars = undefined;
    el.textContent = text;
  }

  // request is the pages' one way to ask the kiosk: JSON in, JSON out.
  // done gets the HTTP status (0 when the kiosk did not answer) and the
  // parsed body (null when it was not JSON).
  function request(method, path, body, done) {
    var xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.timeout = 70000; // longer than the kiosk's longest long-poll
    if (body) { xhr.setRequestHeader('Content-Type', 'application/json'); }
    xhr.onload = function () {
      var d = null;
      try { d = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      done(xhr.status, d);
    };
    xhr.onerror = xhr.ontimeout = function () { done(0, null); };
    xhr.send(body ? JSON.stringify(body) : null);
  }

  function fetchCatalogue(l, done) {
    if (catalogues[l]) { done(); return; }
    request('GET', prefix + '/static/i18n/' + l + '.json', null, function (status, c) {
      if (status === 200 && c) { catalogues[l] = c; }
      done();
    });
  }

  // load switches the page to language l (and second language l2, '' for
  // none), fetching only what it lacks: each catalogue at most once.
  function load(l, l2, done) {
    var want = [l];
    if (l2 && l2 !== l) { want.push(l2); }
    var left = want.length;
    var one = function () {
      left--;
      if (left > 0) { return; }
      lang = l;
      lang2 = l2 || '';
      document.documentElement.lang = l;
      apply();
      markSwitcher();
      syncURL();
      if (done) { done(); }
    };
    for (var i = 0; i < want.length; i++) { fetchCatalogue(want[i], one); }
  }

  // remember keeps the chosen language for the next page and visit: a
  // cookie, so that the kiosk serves the next page in it at once.
  function remember(l) {
    document.cookie = 'kiosk_lang=' + l + '; path=/; max-age=31536000; SameSite=Lax';
  }

  // syncURL keeps ?lang= and ?lang2= in the address bar in step with the
  // page, where they are there at all, so a reload shows the same.
  function syncURL() {
    if (!window.history || !history.replaceState || !/[?&]lang2?=/.test(location.search)) { return; }
    var q = location.search.replace(/^\?/, '').split('&');
    var out = [];
    for (var i = 0; i < q.length; i++) {
      if (q[i] && !/^lang2?=/.test(q[i])) { out.push(q[i]); }
    }
    out.push('lang=' + lang);
    if (lang2) { out.push('lang2=' + lang2); }
    history.replaceState(null, '', location.pathname + '?' + out.join('&'));
  }

  function markSwitcher() {
    var links = document.querySelectorAll('.lang-switch a[hreflang]');
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute('hreflang') === lang) {
        links[i].setAttribute('aria-current', 'true');
      } else {
        links[i].removeAttribute('aria-current');
      }
    }
  }

  // The switcher's links work without script too (?lang= reloads the page
  // in that language); with script they switch in place, so a phone keeps
  // its connection and an answer being sent.
  function initSwitcher(onSwitch) {
    markSwitcher();
    var links = document.querySelectorAll('.lang-switch a[hreflang]');
    for (var i = 0; i < links.length; i++) {
      links[i].onclick = function (ev) {
        ev.preventDefault();
        var l = this.getAttribute('hreflang');
        remember(l);
        load(l, lang2, onSwitch);
      };
    }
  }

  window.Kiosk = {
    prefix: prefix,
    t: t,
    fill: fill,
    plain: plain,
    apply: apply,
    load: load,
    initSwitcher: initSwitcher,
    request: request,
    data: data,
    lang: function () { return lang; },
    lang2: function () { return lang2; }
  };
})();

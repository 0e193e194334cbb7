/* Shared by the projector and phone pages: the string catalogue.
   Written as plain ES5 so that old phones run it. */
(function () {
  'use strict';
  var catalogue = {};

  // t returns the catalogue string for key with {name} placeholders filled.
  function t(key, vars) {
    var s = catalogue[key];
    if (s === undefined) { return key; }
    return s.replace(/\{(\w+)\}/g, function (m, name) {
      return vars && vars[name] !== undefined ? String(vars[name]) : m;
    });
  }

  // apply fills every element marked data-i18n under root.
  function apply(root) {
    var els = (root || document).querySelectorAll('[data-i18n]');
    for (var i = 0; i < els.length; i++) {
      var s = catalogue[els[i].getAttribute('data-i18n')];
      if (s !== undefined) { els[i].textContent = s; }
    }
  }

  // load fetches the catalogue for lang; the English text already in the
  // page stays if it cannot be had.
  function load(lang, done) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', '/static/i18n/' + lang + '.json');
    xhr.onload = function () {
      if (xhr.status === 200) {
        try { catalogue = JSON.parse(xhr.responseText); apply(); } catch (e) { /* keep the page's text */ }
      }
      done();
    };
    xhr.onerror = function () { done(); };
    xhr.send();
  }

  window.Kiosk = { t: t, apply: apply, load: load };
})();

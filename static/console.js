/* The lecturer's console: every control of the kiosk, each answered in
   words right beside it, in the lecturer's language. Nothing typed here
   is ever shown on the projector view, which is a separate page (/); P
   (or the button) switches this window to it, for a mirrored screen. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var t = K.t;
  var $ = function (id) { return document.getElementById(id); };

  var fields = [];      // the notice fields, as the kiosk sends them
  var templates = {};   // lang -> template
  var filled = false;   // the form holds the current round or a template
  var last = null;      // the last state

  // errorKeys say in plain words why the kiosk refused a change. invalid
  // and not-found depend on the control, which gives its own.
  var errorKeys = {
    'too-large': 'con.err.too_large',
    'unauthorized': 'con.err.unauthorized',
    'signed-out-at-close': 'con.err.signed_out_at_close',
    'forbidden': 'con.err.forbidden',
    'closed': 'con.err.closed',
    'series-mismatch': 'con.err.series_mismatch',
    'storage': 'con.err.storage',
    'unavailable': 'con.err.unavailable',
    'rate-limited': 'con.err.busy',
    'not-found': 'con.err.not_found',
    'invalid': 'con.err.invalid'
  };

  // say shows key next to the control that caused it.
  function say(id, key, vars, bad) {
    var el = $(id);
    el.className = 'feedback' + (bad ? ' bad' : ' good');
    K.fill(el, key, vars);
  }

  function explain(status, data, own) {
    if (status === 0) { return 'con.err.offline'; }
    if (status === 404 && !(data && data.error)) { return 'con.err.not_available'; }
    var code = data && data.error;
    return (own && own[code]) || errorKeys[code] || 'con.err.other';
  }

  // control sends what body() returns (null: nothing to send; a string:
  // a problem found before sending) and answers beside the control.
  function control(id, msgID, path, body, own, done) {
    var submit = function (ev) {
      if (ev) { ev.preventDefault(); }
      var b = body();
      if (b === null) { return; }
      if (typeof b === 'string') { say(msgID, b, null, true); return; }
      say(msgID, 'con.sending');
      K.request('POST', path, b, function (status, data) {
        if (status === 200) { say(msgID, (own && own.ok) || 'proj.saved'); }
        else { say(msgID, explain(status, data, own), null, true); }
        if (status === 200 && done) { done(data); }
        if (status === 200 && data && data.version !== undefined) { render(data); }
      });
    };
    if ($(id).tagName === 'FORM') { $(id).onsubmit = submit; } else { $(id).onclick = submit; }
  }

  function wholeNumber(v, min) {
    return /^\s*\d+\s*$/.test(v) && Number(v) >= min && Number(v) <= 100000;
  }

  function render(st) {
    last = st;
    $('auth-problem').hidden = true;
    var d = K.state.renderBanner(st);
    K.state.renderWarnings($('warnings'), st);
    if (d.closed) { K.fill($('count-line'), 'con.count_closed'); }
    else if (st.mode === 'lecturer-only') { K.fill($('count-line'), 'con.count_lecturer_only'); }
    else if (st.headcount > 0) { K.fill($('count-line'), 'con.count', { received: st.received, headcount: st.headcount, issued: st.issued }); }
    else { K.fill($('count-line'), 'con.count_no_headcount', { received: st.received, issued: st.issued }); }
    $('missing-box').hidden = !(st.missing > 0);
    if (st.missing > 0) { K.fill($('missing-text'), 'con.missing', { missing: st.missing }); }
    var devices = st.lecturer_devices;
    $('devices-text').parentNode.hidden = devices === undefined;
    if (devices !== undefined) { K.fill($('devices-text'), 'con.devices', { devices: devices }); }
    prefill('headcount-input', st.headcount > 0 ? String(st.headcount) : '');
    if (!filled && st.purpose) { fillFromRound(st); }
  }

  function offline(status, answer) {
    var closed = K.state.signedOutAtClose(status, answer);
    if (closed) { render({ closed: true }); } else { K.state.renderBanner(null); }
    K.fill($('auth-problem'), closed ? 'con.auth_closed' : 'con.auth');
    $('auth-problem').hidden = status !== 401;
  }

  // prefill shows the kiosk's value in an empty field the lecturer is not editing.
  function prefill(id, value) {
    var el = $(id);
    if (!el.value && document.activeElement !== el) { el.value = value || ''; }
  }

  // The notice form: one labelled text box per field, with the template's
  // hint. The purpose above is the notice's short purpose, so the field of
  // that name is labelled as what it is: the longer text about it.
  function buildFields(lang) {
    var tpl = templates[lang] || templates.en;
    var box = $('notice-fields');
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      var wrap = $('wrap-' + f);
      if (!wrap) {
        wrap = document.createElement('div');
        wrap.id = 'wrap-' + f;
        wrap.className = 'field';
        var label = document.createElement('label');
        label.htmlFor = 'field-' + f;
        var area = document.createElement('textarea');
        area.id = 'field-' + f;
        area.rows = 3;
        area.maxLength = 5000;
        area.setAttribute('aria-describedby', 'hint-' + f);
        var hint = document.createElement('p');
        hint.id = 'hint-' + f;
        hint.className = 'hint';
        wrap.appendChild(label);
        wrap.appendChild(area);
        wrap.appendChild(hint);
        box.appendChild(wrap);
      }
      // Labels and hints are in the template's language, not the page's.
      wrap.lang = tpl ? tpl.lang : 'en';
      wrap.firstChild.textContent = tpl ? tpl.labels[f] : f;
      if (f === 'purpose') { wrap.lang = K.lang(); K.fill(wrap.firstChild, 'con.purpose_more'); }
      wrap.lastChild.textContent = tpl ? tpl.hints[f] : '';
    }
  }

  function fillFromTemplate(lang) {
    var tpl = templates[lang];
    if (!tpl) { return; }
    buildFields(lang);
    for (var i = 0; i < fields.length; i++) { $('field-' + fields[i]).value = tpl.fields[fields[i]] || ''; }
    filled = true;
  }

  function fillFromRound(st) {
    if (!fields.length) { return; }
    filled = true;
    $('purpose-input').value = st.purpose || '';
    $('series-input').value = st.series || '';
    setMode(st.mode || 'room');
    if (st.template && templates[st.template]) { $('template-select').value = st.template; }
    buildFields($('template-select').value);
    var n = st.notice && typeof st.notice === 'object' ? st.notice : {};
    for (var i = 0; i < fields.length; i++) { $('field-' + fields[i]).value = n[fields[i]] || ''; }
    if (typeof st.notice === 'string' && st.notice) { $('field-purpose').value = st.notice; }
  }

  function mode() {
    var radios = document.getElementsByName('mode');
    for (var i = 0; i < radios.length; i++) { if (radios[i].checked) { return radios[i].value; } }
    return 'room';
  }

  function setMode(m) {
    var radios = document.getElementsByName('mode');
    for (var i = 0; i < radios.length; i++) { radios[i].checked = radios[i].value === m; }
  }

  // loadTemplates fills the template list, asking again until the kiosk
  // answers: a console opened while the kiosk restarts, or before the
  // lecturer signs in, gets its list once it can.
  function loadTemplates(done) {
    K.request('GET', '/api/templates', null, function (status, data) {
      if (status !== 200 || !data) {
        if (done) { done(); }
        setTimeout(loadTemplates, 5000);
        return;
      }
      fields = data.fields;
      var select = $('template-select');
      for (var i = 0; i < data.templates.length; i++) {
        var tpl = data.templates[i];
        templates[tpl.lang] = tpl;
        var opt = document.createElement('option');
        opt.value = tpl.lang;
        opt.lang = tpl.lang;
        opt.textContent = tpl.template;
        select.appendChild(opt);
      }
      select.value = templates[K.lang()] ? K.lang() : (templates.en ? 'en' : data.templates[0].lang);
      buildFields(select.value);
      if (done) { done(); }
    });
  }

  function loadSeries() {
    K.request('GET', '/api/series', null, function (status, data) {
      if (status !== 200 || !data) { return; }
      var list = $('series-list');
      list.innerHTML = '';
      for (var i = 0; i < data.series.length; i++) {
        var opt = document.createElement('option');
        opt.value = data.series[i].series;
        list.appendChild(opt);
      }
    });
  }

  $('template-fill').onclick = function () {
    if (filled && !window.confirm(t('proj.template_confirm'))) { return; }
    fillFromTemplate($('template-select').value);
  };
  $('template-select').onchange = function () { buildFields($('template-select').value); };

  control('headcount-form', 'headcount-msg', '/api/headcount', function () {
    var v = $('headcount-input').value;
    return wholeNumber(v, 1) ? { headcount: Number(v) } : 'con.err.headcount';
  }, { invalid: 'con.err.headcount', ok: 'con.headcount_saved' });
  control('round-form', 'round-msg', '/api/round', function () {
    if (!$('purpose-input').value.replace(/\s/g, '')) { return 'con.err.purpose'; }
    var notice = {};
    var blanks = false;
    for (var i = 0; i < fields.length; i++) {
      var v = $('field-' + fields[i]).value;
      if (v) { notice[fields[i]] = v; }
      if (/\[[^\]]+\]/.test(v)) { blanks = true; }
    }
    if (blanks && !window.confirm(t('proj.blanks_confirm'))) { return null; }
    var body = { purpose: $('purpose-input').value, notice: notice, template: $('template-select').value, mode: mode() };
    if ($('series-input').value) { body.series = $('series-input').value; }
    return body;
  }, { invalid: 'con.err.round', ok: 'con.round_saved' }, function () { loadSeries(); });
  control('paper-form', 'paper-msg', '/api/paper', function () {
    var c = $('paper-consents').value, r = $('paper-refusals').value;
    if (!wholeNumber(c, 0) || !wholeNumber(r, 0)) { return 'con.err.paper'; }
    return { consents: Number(c), refusals: Number(r) };
  }, { invalid: 'con.err.paper', ok: 'con.paper_saved' }, function () {
    // The split of paper slips is not kept on screen, in case this
    // window is mirrored after all.
    $('paper-consents').value = '';
    $('paper-refusals').value = '';
  });
  control('series-form', 'series-msg', '/api/series/end', function () {
    var name = $('series-end-input').value;
    if (!name.replace(/\s/g, '')) { return 'con.err.series_name'; }
    if (!window.confirm(t('proj.series_end_confirm', { series: name }))) { return null; }
    return { series: name };
  }, { 'not-found': 'con.err.no_series', ok: 'con.series_ended' }, function () { $('series-end-input').value = ''; loadSeries(); });
  control('close-form', 'close-msg', '/api/close', function () {
    return window.confirm(t('proj.close_confirm')) ? {} : null;
  }, { ok: 'con.closed' });
  control('release', 'release-msg', '/api/restart/release', function () {
    return window.confirm(t('con.release_confirm')) ? {} : null;
  }, { ok: 'con.released' });
  control('logout', 'devices-msg', '/api/logout', function () { return {}; }, { ok: 'con.logged_out' });
  control('logout-others', 'devices-msg', '/api/logout/others', function () {
    return window.confirm(t('con.logout_others_confirm')) ? {} : null;
  }, { ok: 'con.logged_out_others' });

  // P shows the projector view in this window: one key, before a mirrored
  // screen shows the room anything typed here.
  function showProjector() { location.href = '/'; }
  $('show-projector').onclick = showProjector;
  document.addEventListener('keydown', function (ev) {
    var tag = ev.target && ev.target.tagName;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') { return; }
    if (ev.key === 'p' || ev.key === 'P') { ev.preventDefault(); showProjector(); }
  });

  // The projector's second language, chosen here and kept in this browser.
  var l2 = $('lang2');
  var langs = K.data.languages || [];
  for (var i = 0; i < langs.length; i++) {
    var opt = document.createElement('option');
    opt.value = langs[i].code;
    opt.lang = langs[i].code;
    opt.textContent = langs[i].name;
    l2.appendChild(opt);
  }
  try { l2.value = localStorage.getItem('consent-kiosk-lang2') || ''; } catch (e) { /* this visit only */ }
  l2.onchange = function () {
    try { localStorage.setItem('consent-kiosk-lang2', l2.value); } catch (e) { /* this visit only */ }
  };

  K.initSwitcher(function () { if (last) { render(last); } buildFields($('template-select').value); });
  loadTemplates(function () {
    K.state.watch(render, offline);
    loadSeries();
  });
})();

/* The projector page: the QR code and typed join code, the count, the
   banner, and the lecturer's controls. State arrives by long-polling
   /api/state. With a second language (?lang2=, or the choice at the foot
   of the page) the words a hall reads are shown in both. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var t = K.t;
  var $ = function (id) { return document.getElementById(id); };
  var version = '';
  var joinURL = '';
  var langs = { en: 1, nb: 1, nn: 1, sv: 1 };

  var reasonKeys = {
    'ready': 'proj.reason.ready',
    'lecturer_only': 'proj.reason.lecturer_only',
    'no-headcount': 'proj.reason.no-headcount',
    'waiting': 'proj.reason.waiting',
    'refused': 'proj.reason.refused',
    'overcount': 'proj.reason.overcount',
    'closed': 'proj.reason.closed',
    'fault': 'proj.reason.fault',
    'restarted': 'proj.reason.restarted',
    'offline': 'proj.reason.offline',
    'unreachable': 'proj.reason.unreachable'
  };

  var fields = [];      // the notice fields, in the order they are shown
  var templates = {};   // lang -> template
  var filled = false;   // the form holds the current round or a template

  function request(method, path, body, done) {
    var xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.timeout = 70000;
    if (body) { xhr.setRequestHeader('Content-Type', 'application/json'); }
    xhr.onload = function () {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      done(xhr.status, data);
    };
    xhr.onerror = xhr.ontimeout = function () { done(0, null); };
    xhr.send(body ? JSON.stringify(body) : null);
  }

  function banner(ready, reason) {
    $('banner').className = 'banner ' + (ready ? 'ready' : 'locked');
    K.fill($('banner-state'), ready ? 'proj.ready' : 'proj.locked');
    K.fill($('banner-reason'), reasonKeys[reason] || 'proj.reason.fault');
  }

  function render(st) {
    var lecturerOnly = st.mode === 'lecturer-only';
    banner(st.unlocked, st.unlocked ? (lecturerOnly ? 'lecturer_only' : 'ready') : st.reason);
    if (lecturerOnly) {
      K.fill($('count'), 'proj.count_lecturer_only');
      K.plain($('issued'), '');
    } else if (st.headcount > 0) {
      // received already includes paper slips: the room sees one number.
      K.fill($('count'), 'proj.count', { received: st.received, headcount: st.headcount });
      K.fill($('issued'), 'proj.issued', { issued: st.issued });
    } else {
      K.fill($('count'), 'proj.count_no_headcount', { received: st.received });
      K.fill($('issued'), 'proj.issued', { issued: st.issued });
    }
    if (st.purpose) { K.fill($('purpose'), 'proj.purpose', { purpose: st.purpose }); } else { K.fill($('purpose'), 'proj.no_purpose'); }
    renderOBS(st.obs);
    renderHints(st.hints);
    // After a restart: how many answers have not come back, and a way to
    // let them go.
    var missing = (st.missing || 0) + (st.paper_missing || 0);
    $('release-form').hidden = missing === 0;
    if (missing) { K.fill($('missing'), 'proj.missing', { missing: st.missing || 0, paper: st.paper_missing || 0 }); }
    $('lecturer-only').hidden = !lecturerOnly;
    K.fill($('scan-heading'), lecturerOnly ? 'proj.scan_lecturer_only' : 'proj.scan');
    var q = st.notice && typeof st.notice === 'object' ? st.notice.questions : '';
    if (q) { K.fill($('questions'), 'proj.questions', { questions: q }); }
    $('questions').hidden = !(lecturerOnly && q);
    renderDevices(st.lecturer_devices);
    prefill('headcount-input', st.headcount > 0 ? String(st.headcount) : '');
    if (!filled && st.purpose) { fillFromRound(st); }
  }

  // renderOBS shows the OBS guard's status; a problem is shown loudly,
  // since a withdrawal might then not stop the recording.
  function renderOBS(o) {
    var el = $('obs');
    if (!o) { el.hidden = true; return; }
    el.hidden = false;
    el.className = 'obs' + (o.problem ? ' problem' : '');
    if (o.problem) { K.fill(el, 'proj.obs_problem', { problem: o.problem }); }
    else if (o.recording) { K.fill(el, 'proj.obs_recording'); }
    else { K.fill(el, 'proj.obs_connected'); }
  }

  // Lecturer devices: how many browsers are signed in, and signing out.
  function renderDevices(n) {
    if (typeof n === 'number') { K.fill($('devices-count'), 'proj.devices', { n: n }); }
  }
  function signOut(path, done) {
    request('POST', path, null, function (status, data) {
      if (status === 200) { done(data); }
      else { K.fill($('control-msg'), 'proj.not_saved', { message: (data && data.message) || ('HTTP ' + status) }); }
    });
  }
  $('logout').onclick = function () {
    // The page's long-poll then gets 401 and says how to sign in again.
    signOut('/api/logout', function () { offline(); $('auth-problem').hidden = false; });
  };
  $('logout-others').onclick = function () {
    signOut('/api/logout/others', function (data) {
      renderDevices(data.lecturer_devices);
      K.fill($('control-msg'), 'proj.signed_out_others');
    });
  };

  // renderHints explains the kiosk's advice (hints in /api/state) in plain
  // words; only codes with a catalogue entry are shown.
  var hintKeys = { 'no-phones-joined': 'proj.hint.no-phones-joined' };
  function renderHints(hints) {
    var el = $('hints');
    var key = hints && hints.length ? hintKeys[hints[0]] : '';
    el.hidden = !key;
    if (key) { K.fill(el, key); }
  }

  // prefill shows the kiosk's value in an empty field the lecturer is not editing.
  function prefill(id, value) {
    var el = $(id);
    if (!el.value && document.activeElement !== el) { el.value = value || ''; }
  }

  // offline: when the kiosk does not answer, the page must not keep showing
  // READY TO RECORD.
  function offline() { banner(false, 'offline'); }

  function poll() {
    var q = version ? '?wait=25&seen=' + version : '';
    request('GET', '/api/state' + q, null, function (status, st) {
      if (status === 401) { $('auth-problem').hidden = false; offline(); return; }
      if (status !== 200 || !st) { offline(); setTimeout(poll, 1000); return; }
      $('auth-problem').hidden = true;
      version = String(st.version);
      render(st);
      poll();
    });
  }

  function refreshJoin() {
    request('GET', '/api/join', null, function (status, j) {
      if (status === 200 && j && j.url !== joinURL) {
        joinURL = j.url;
        $('qr').src = '/qr.png?for=' + encodeURIComponent(j.url.split('/').pop());
        K.plain($('code-url'), j.code_url);
        // Grouped in threes: easier to read from the back and to type.
        K.plain($('code'), j.code.slice(0, 3) + '\u2009' + j.code.slice(3));
      }
    });
  }

  function control(form, path, body, done) {
    $(form).onsubmit = function (ev) {
      ev.preventDefault();
      var b = body();
      if (!b) { return; }
      request('POST', path, b, function (status, data) {
        if (status === 200) { K.fill($('control-msg'), 'proj.saved'); }
        else { K.fill($('control-msg'), 'proj.not_saved', { message: (data && data.message) || ('HTTP ' + status) }); }
        if (status === 200 && done) { done(data); }
      });
    };
  }

  // The notice form: one labelled text box per field, with the template's
  // hint, built from the templates the kiosk ships.
  function buildFields(lang) {
    var tpl = templates[lang] || templates.en;
    var box = $('notice-fields');
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      var id = 'field-' + f;
      var wrap = $('wrap-' + f);
      if (!wrap) {
        wrap = document.createElement('div');
        wrap.id = 'wrap-' + f;
        wrap.className = 'field';
        var label = document.createElement('label');
        label.htmlFor = id;
        var area = document.createElement('textarea');
        area.id = id;
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

  function loadTemplates(done) {
    request('GET', '/api/templates', null, function (status, data) {
      if (status !== 200 || !data) { done(); return; }
      fields = data.fields;
      var select = $('template-select');
      for (var i = 0; i < data.templates.length; i++) {
        var tpl = data.templates[i];
        templates[tpl.lang] = tpl;
        var opt = document.createElement('option');
        opt.value = tpl.lang;
        opt.textContent = tpl.lang + ': ' + tpl.template;
        select.appendChild(opt);
      }
      select.value = templates.en ? 'en' : data.templates[0].lang;
      buildFields(select.value);
      done();
    });
  }

  function loadSeries() {
    request('GET', '/api/series', null, function (status, data) {
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
    var lang = $('template-select').value;
    if (filled && !window.confirm(t('proj.template_confirm'))) { return; }
    fillFromTemplate(lang);
  };
  $('template-select').onchange = function () { buildFields($('template-select').value); };

  control('headcount-form', '/api/headcount', function () {
    return { headcount: Number($('headcount-input').value) };
  });
  control('round-form', '/api/round', function () {
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
  }, function () { loadSeries(); });
  control('paper-form', '/api/paper', function () {
    return { consents: Number($('paper-consents').value), refusals: Number($('paper-refusals').value) };
  }, function () {
    // The projected page must not keep showing how many refused on paper.
    $('paper-consents').value = '';
    $('paper-refusals').value = '';
  });
  control('series-form', '/api/series/end', function () {
    if (!window.confirm(t('proj.series_end_confirm', { series: $('series-end-input').value }))) { return null; }
    return { series: $('series-end-input').value };
  }, function () { $('series-end-input').value = ''; loadSeries(); });
  control('release-form', '/api/restart/release', function () {
    return window.confirm(t('proj.release_confirm')) ? {} : null;
  });
  control('close-form', '/api/close', function () {
    return window.confirm(t('proj.close_confirm')) ? {} : null;
  });

  // The second language: ?lang2= first, else the lecturer's last choice.
  var lang2 = '';
  var m = /[?&]lang2=([a-z]+)/.exec(location.search);
  try { lang2 = m ? m[1] : (localStorage.getItem('consent-kiosk-lang2') || ''); } catch (e) { lang2 = m ? m[1] : ''; }
  if (!langs[lang2]) { lang2 = ''; }
  $('lang2').value = lang2;
  $('lang2').onchange = function () {
    var l2 = langs[this.value] ? this.value : '';
    try { localStorage.setItem('consent-kiosk-lang2', l2); } catch (e) { /* this visit only */ }
    K.load(K.lang(), l2);
  };

  K.initSwitcher();
  K.load(K.lang(), lang2, function () {
    loadTemplates(function () {
      poll();
      loadSeries();
      refreshJoin();
      setInterval(refreshJoin, 5000);
    });
  });
})();

/* The projector page: the QR code and typed join code, the count, the
   banner, and the lecturer's controls. State arrives by long-polling
   /api/state. With a second language (?lang2=, or the choice at the foot
   of the page) the words a hall reads are shown in both. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var $ = function (id) { return document.getElementById(id); };
  var version = '';
  var joinURL = '';
  var langs = { en: 1, nb: 1, nn: 1, sv: 1 };

  var reasonKeys = {
    'ready': 'proj.reason.ready',
    'no-headcount': 'proj.reason.no-headcount',
    'waiting': 'proj.reason.waiting',
    'refused': 'proj.reason.refused',
    'overcount': 'proj.reason.overcount',
    'closed': 'proj.reason.closed',
    'fault': 'proj.reason.fault',
    'offline': 'proj.reason.offline'
  };

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
    banner(st.unlocked, st.unlocked ? 'ready' : st.reason);
    if (st.headcount > 0) {
      K.fill($('count'), 'proj.count', { received: st.received, headcount: st.headcount });
    } else {
      K.fill($('count'), 'proj.count_no_headcount', { received: st.received });
    }
    K.fill($('issued'), 'proj.issued', { issued: st.issued });
    if (st.purpose) { K.fill($('purpose'), 'proj.purpose', { purpose: st.purpose }); } else { K.fill($('purpose'), 'proj.no_purpose'); }
    renderOBS(st.obs);
    prefill('headcount-input', st.headcount > 0 ? String(st.headcount) : '');
    prefill('purpose-input', st.purpose);
    prefill('notice-input', st.notice);
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

  function control(form, path, body, confirmKey) {
    $(form).onsubmit = function (ev) {
      ev.preventDefault();
      if (confirmKey && !window.confirm(K.t(confirmKey))) { return; }
      request('POST', path, body(), function (status, data) {
        if (status === 200) { K.fill($('control-msg'), 'proj.saved'); }
        else { K.fill($('control-msg'), 'proj.not_saved', { message: (data && data.message) || ('HTTP ' + status) }); }
      });
    };
  }

  control('headcount-form', '/api/headcount', function () {
    return { headcount: Number($('headcount-input').value) };
  });
  control('round-form', '/api/round', function () {
    return { purpose: $('purpose-input').value, notice: $('notice-input').value };
  });
  control('close-form', '/api/close', function () { return {}; }, 'proj.close_confirm');

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
    poll();
    refreshJoin();
    setInterval(refreshJoin, 5000);
  });
})();

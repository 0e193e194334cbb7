/* The projector page: the QR code, the count, the banner, and the
   lecturer's controls. State arrives by long-polling /api/state. */
(function () {
  'use strict';
  var t = window.Kiosk.t;
  var $ = function (id) { return document.getElementById(id); };
  var version = '';
  var joinURL = '';

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

  function render(st) {
    var banner = $('banner');
    banner.className = 'banner ' + (st.unlocked ? 'ready' : 'locked');
    $('banner-state').textContent = t(st.unlocked ? 'proj.ready' : 'proj.locked');
    $('banner-reason').textContent = t('proj.reason.' + (st.unlocked ? 'ready' : st.reason));
    $('count').textContent = st.headcount > 0
      ? t('proj.count', { received: st.received, headcount: st.headcount })
      : t('proj.count_no_headcount', { received: st.received });
    $('issued').textContent = t('proj.issued', { issued: st.issued });
    $('purpose').textContent = st.purpose ? t('proj.purpose', { purpose: st.purpose }) : t('proj.no_purpose');
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
    if (o.problem) { el.textContent = t('proj.obs_problem', { problem: o.problem }); }
    else { el.textContent = t(o.recording ? 'proj.obs_recording' : 'proj.obs_connected'); }
  }

  // prefill shows the kiosk's value in an empty field the lecturer is not editing.
  function prefill(id, value) {
    var el = $(id);
    if (!el.value && document.activeElement !== el) { el.value = value || ''; }
  }

  // offline: when the kiosk does not answer, the page must not keep showing
  // READY TO RECORD.
  function offline() {
    $('banner').className = 'banner locked';
    $('banner-state').textContent = t('proj.locked');
    $('banner-reason').textContent = t('proj.reason.offline');
  }

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
        $('join-url').textContent = t('proj.join_url', { url: j.url });
      }
    });
  }

  function control(form, path, body, confirmKey) {
    $(form).onsubmit = function (ev) {
      ev.preventDefault();
      if (confirmKey && !window.confirm(t(confirmKey))) { return; }
      request('POST', path, body(), function (status, data) {
        $('control-msg').textContent = status === 200 ? t('proj.saved') : (data && data.message) || ('HTTP ' + status);
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

  window.Kiosk.load('en', function () {
    poll();
    refreshJoin();
    setInterval(refreshJoin, 5000);
  });
})();

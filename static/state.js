/* What the projector view and the console both say about the kiosk: the
   banner, the warnings, and the long-poll of /api/state that feeds them.
   One copy, so that the big screen and the lecturer's console can never
   say two different things about the same state. Plain ES5. */
(function () {
  'use strict';
  var K = window.Kiosk;

  var reasonKeys = {
    'no-headcount': 'proj.reason.no-headcount',
    'waiting': 'proj.reason.waiting',
    'refused': 'proj.reason.refused',
    'overcount': 'proj.reason.overcount',
    'closed': 'proj.reason.closed',
    'fault': 'proj.reason.fault',
    'restarted': 'proj.reason.restarted',
    'unreachable': 'proj.reason.unreachable'
  };

  // hintKeys explain the kiosk's hints in plain words; a hint this page
  // does not know is left out rather than shown as a code.
  var hintKeys = {
    'no-phones-joined': 'proj.hint.no_phones'
  };

  // describe is the one true thing a state says: ready or not, and why.
  function describe(st) {
    if (!st) { return { ready: false, reason: 'proj.reason.offline' }; }
    if (st.closed) { return { ready: false, reason: 'proj.reason.closed', closed: true }; }
    if (st.unlocked) {
      return { ready: true, reason: st.mode === 'lecturer-only' ? 'proj.reason.lecturer_only' : 'proj.reason.ready' };
    }
    return { ready: false, reason: reasonKeys[st.reason] || 'proj.reason.fault' };
  }

  // warnings lists what the room and the lecturer must know besides the
  // banner. Each field is optional: a kiosk without it simply has none.
  function warnings(st) {
    var out = [];
    if (!st) { return out; }
    var o = st.obs;
    if (o) {
      if (o.problem) { out.push({ key: 'proj.obs_problem', vars: { problem: o.problem }, problem: true }); }
      else if (o.recording) { out.push({ key: 'proj.obs_recording' }); }
      else { out.push({ key: 'proj.obs_connected' }); }
    }
    if (st.hook_problem) { out.push({ key: 'proj.warn.hook', problem: true }); }
    if (st.relay && st.relay.connected === false) { out.push({ key: 'proj.warn.relay_lost', problem: true }); }
    if (st.missing > 0 && !st.closed) { out.push({ key: 'proj.warn.missing', vars: { missing: st.missing }, problem: true }); }
    if (st.join_limit_hit && !st.closed) { out.push({ key: 'proj.warn.join_limit', problem: true }); }
    var hints = st.hints || [];
    for (var i = 0; i < hints.length; i++) {
      if (hintKeys[hints[i]] && !st.closed) { out.push({ key: hintKeys[hints[i]] }); }
    }
    return out;
  }

  function renderBanner(st) {
    var d = describe(st);
    var b = document.getElementById('banner');
    b.className = b.className.replace(/\s*\b(ready|locked)\b/g, '') + (d.ready ? ' ready' : ' locked');
    K.fill(document.getElementById('banner-state'), d.ready ? 'proj.ready' : 'proj.locked');
    K.fill(document.getElementById('banner-reason'), d.reason);
    return d;
  }

  // renderWarnings fills the list el with warnings(st), reusing its items
  // so that nothing flickers on every poll.
  function renderWarnings(el, st) {
    var ws = warnings(st);
    while (el.children.length > ws.length) { el.removeChild(el.lastChild); }
    for (var i = 0; i < ws.length; i++) {
      var li = el.children[i];
      if (!li) { li = document.createElement('li'); el.appendChild(li); }
      li.className = ws[i].problem ? 'problem' : 'note';
      if (ws[i].dual) { li.setAttribute('data-dual', ''); }
      K.fill(li, ws[i].key, ws[i].vars);
    }
    el.hidden = ws.length === 0;
  }

  // watch long-polls /api/state: onState(st) for each new state,
  // onOffline(status, answer) when the kiosk does not answer or refuses
  // the session (401), after which it keeps trying.
  function watch(onState, onOffline) {
    var version = '';
    function poll() {
      var q = version ? '?wait=25&seen=' + version : '';
      K.request('GET', '/api/state' + q, null, function (status, st) {
        if (status !== 200 || !st) {
          version = '';
          onOffline(status, st);
          setTimeout(poll, status === 401 ? 5000 : 1000);
          return;
        }
        version = String(st.version);
        onState(st);
        poll();
      });
    }
    poll();
  }

  // signedOutAtClose: the kiosk refused the session because closing the
  // lecture's session ended every sign-in. The page then shows the closed
  // state it knows to be true, not "no connection".
  function signedOutAtClose(status, answer) {
    return status === 401 && !!answer && answer.error === 'signed-out-at-close';
  }

  K.state = { describe: describe, warnings: warnings, renderBanner: renderBanner, renderWarnings: renderWarnings, watch: watch, signedOutAtClose: signedOutAtClose };
})();

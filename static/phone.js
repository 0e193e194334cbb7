/* The phone page: join with the token from the QR code, show the notice,
   send the student's answer and keep it counted across reconnects.
   Plain ES5 for old phones. */
(function () {
  'use strict';
  var t = window.Kiosk.t;
  var $ = function (id) { return document.getElementById(id); };

  var joinToken = decodeURIComponent(location.pathname.split('/')[2] || '');
  var device = deviceSecret();
  var ws = null;
  var joined = false;      // the kiosk answered our hello
  var stopped = false;     // the kiosk will not take us back: do not reconnect
  var retries = 0;
  var round = 0;           // the round whose notice we show
  var choice = 'none';     // the answer as the kiosk has it
  var pending = null;      // an answer not yet acknowledged
  var leaving = false;

  // deviceSecret is this phone's random, never-shown identity: 32 bytes
  // from the browser's CSPRNG, kept so that a reconnect finds the same slip.
  function deviceSecret() {
    var key = 'consent-kiosk-device';
    var s = null;
    try { s = localStorage.getItem(key); } catch (e) { /* private mode */ }
    if (s && /^[A-Za-z0-9_-]{22,128}$/.test(s)) { return s; }
    var b = new Uint8Array(32);
    (window.crypto || window.msCrypto).getRandomValues(b);
    s = '';
    for (var i = 0; i < b.length; i++) { s += ('0' + b[i].toString(16)).slice(-2); }
    try { localStorage.setItem(key, s); } catch (e) { /* still works for this visit */ }
    return s;
  }

  function say(key) { $('status').textContent = t(key); }

  function problem(key) {
    var p = $('problem');
    if (!key) { p.hidden = true; p.textContent = ''; return; }
    p.textContent = t(key);
    p.hidden = false;
  }

  function send(msg) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  function connect() {
    if (stopped) { return; }
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    ws = new WebSocket(proto + location.host + '/ws');
    ws.onopen = function () { send({ type: 'hello', join: joinToken, device: device }); };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      handle(m);
    };
    ws.onclose = function () {
      joined = false;
      if (stopped) { return; }
      say('phone.reconnecting');
      renderChoice();
      // Jittered backoff, so that a whole hall does not reconnect at once
      // after the kiosk restarts.
      var delay = Math.min(10000, 500 * Math.pow(2, retries)) * (0.5 + Math.random());
      retries++;
      setTimeout(connect, delay);
    };
  }

  function handle(m) {
    switch (m.type) {
      case 'round': onRound(m); break;
      case 'ack': onAck(m); break;
      case 'tally': onTally(m); break;
      case 'error': onError(m); break;
    }
  }

  function onRound(m) {
    var changed = round !== 0 && m.round !== round;
    round = m.round;
    if (m.closed) {
      stopped = true;
      $('notice').hidden = true;
      $('choose').hidden = true;
      say('phone.closed');
      if (ws) { ws.close(); }
      return;
    }
    if (changed) {
      choice = 'none';
      pending = null;
      say('phone.round_changed');
    }
    $('purpose').textContent = m.purpose || t('phone.waiting_purpose');
    $('notice-text').textContent = m.notice || t('phone.no_notice');
    $('notice').hidden = false;
    // Nobody can consent to a recording whose purpose they were not told (R4).
    $('choose').hidden = !m.purpose;
    renderChoice();
  }

  function onAck(m) {
    if (m.round && m.round !== round) { return; }
    choice = m.choice;
    if (!joined) {
      joined = true;
      retries = 0;
      say('phone.connected');
      problem(null);
      // An answer given while the connection was down goes out now.
      if (leaving && choice !== 'none') { send({ type: 'leave' }); }
      else if (pending !== null && pending !== choice) { sendChoice(); }
      else { pending = null; }
    } else if (pending === choice) {
      pending = null;
    }
    if (leaving && choice === 'none') {
      stopped = true;
      $('notice').hidden = true;
      $('choose').hidden = true;
      say('phone.left');
      ws.close();
      return;
    }
    renderChoice();
  }

  function onTally(m) {
    $('tally-count').textContent = m.headcount > 0
      ? t('phone.tally', { received: m.received, headcount: m.headcount })
      : t('phone.tally_no_headcount', { received: m.received });
    $('tally-outcome').textContent = t(m.unlocked ? 'phone.outcome_unlocked' : 'phone.outcome_locked');
  }

  function onError(m) {
    switch (m.code) {
      case 'join-expired':
      case 'join-invalid':
      case 'join-required':
        stopped = true;
        problem('phone.rejoin');
        if (ws) { ws.close(); }
        break;
      case 'closed':
        stopped = true;
        say('phone.closed');
        break;
      case 'stale-round':
        pending = null;
        say('phone.round_changed');
        renderChoice();
        break;
      default:
        // storage, unavailable, rate-limited: keep the answer and try again.
        if (pending !== null) {
          say('phone.retrying');
          setTimeout(sendChoice, 2000 * (0.5 + Math.random()));
        }
    }
  }

  function sendChoice() {
    if (pending === null) { return; }
    if (joined) { send({ type: 'slip', choice: pending, round: round }); }
    renderChoice();
  }

  function choose(c) {
    pending = c;
    sendChoice();
  }

  function renderChoice() {
    var shown = pending !== null ? pending : choice;
    $('consent').setAttribute('aria-pressed', String(shown === 'consent'));
    $('refuse').setAttribute('aria-pressed', String(shown === 'refuse'));
    var key;
    if (pending !== null) { key = joined ? 'phone.sending' : 'phone.queued'; }
    else { key = 'phone.current_' + choice; }
    $('current').textContent = t(key);
  }

  $('consent').onclick = function () { choose('consent'); };
  $('refuse').onclick = function () { choose('refuse'); };
  $('leave').onclick = function () {
    leaving = true;
    if (joined) { send({ type: 'leave' }); }
  };

  window.Kiosk.load('en', function () {
    say('phone.connecting');
    connect();
  });
})();

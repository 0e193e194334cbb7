/* The phone page: join with the token from the QR code, show the notice,
   send the student's answer and keep it counted across reconnects.

   It speaks to the kiosk over a websocket. Where the network blocks
   websockets, it says the same messages in HTTP requests to /api/phone
   instead, sealed as on the websocket, and waits for news with a
   long-polling hello; meanwhile it keeps trying the websocket, and goes
   back to it once one opens. The student sees no difference. Plain ES5
   for old phones. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var t = K.t;
  var $ = function (id) { return document.getElementById(id); };

  var joinToken = decodeURIComponent(location.pathname.slice(K.prefix.length).split('/')[2] || '');
  var device = deviceSecret();
  var ws = null;
  var overHTTP = false;    // websockets do not get through for now: use /api/phone
  var wsRetries = 0;       // failed websocket tries while on HTTP
  var wsTimer = null;      // the next websocket try while on HTTP
  var httpGen = 0;         // bumped when the page leaves HTTP: older answers are dropped
  var httpSeal = null;     // {id, key, challenge, seq} of the HTTP seal session
  var pollXHR = null;      // the long-polling hello that is out
  var polling = false;     // a long-polling hello is out (HTTP only)
  var version = null;      // the tally's version, for the long-poll
  var joined = false;      // the kiosk answered our hello
  var stopped = false;     // the kiosk will not take us back: do not reconnect
  var retries = 0;
  var round = 0;           // the round whose notice we show
  var choice = 'none';     // the answer as the kiosk has it
  var answered = false;    // the kiosk acknowledged an answer in this round
  var pending = null;      // an answer not yet acknowledged
  var leaving = false;
  var changes = 0;         // slips and leaves sent: a long-poll's ack from before the last is stale
  var current = null;      // the last round message
  var seriesDay = '';      // the day this phone consented earlier in the round's series
  var roundNews = false;   // the status line says the round changed: keep it once connected
  // The notice's fields, those shown before the buttons, and their labels
  // in each template's language all come inlined from the kiosk.
  var FIELDS = K.data.fields || [];
  var SHORT = K.data.short || [];
  var labels = K.data.labels || {};
  // Sealing hides the answer from others on the Wi-Fi (static/seal.js). A
  // phone whose engine fails the self-test sends in clear, harming only
  // its own secrecy.
  var canSeal = sealWorks();
  var seal = null;         // {key, challenge, seq, replies} for this connection

  // wsOpenWait: a websocket that a proxy holds open without answering
  // counts as blocked after this long.
  var wsOpenWait = 8000;

  var currentKeys = {
    none: 'phone.current_none',
    consent: 'phone.current_consent',
    refuse: 'phone.current_refuse'
  };

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

  function say(key) { K.fill($('status'), key); }

  function problem(key, vars) {
    var p = $('problem');
    if (!key) { p.hidden = true; K.plain(p, ''); return; }
    K.fill(p, key, vars);
    p.hidden = false;
  }

  // hideSections hides the notice and the buttons for good, moving focus
  // to el first if it was on something about to disappear.
  function hideSections(el) {
    var a = document.activeElement;
    var gone = ['choose', 'notice', 'notice-details', 'leave', 'tally'];
    for (var i = 0; i < gone.length; i++) {
      if (a && $(gone[i]).contains(a)) { el.focus(); }
    }
    for (var j = 0; j < gone.length; j++) { $(gone[j]).hidden = true; }
  }

  function helloMessage() {
    return { type: 'hello', join: joinToken, device: device };
  }

  function sealWorks() {
    try { return !!window.KioskSeal && window.KioskSeal.selfTest(); } catch (e) { return false; }
  }

  function send(msg) {
    if (overHTTP) { post(msg); return true; }
    if (!ws || ws.readyState !== 1) { return false; }
    if (!seal) { ws.send(JSON.stringify(msg)); return true; }
    seal.seq++;
    var f = window.KioskSeal.sealFrame(seal.key, msg, seal.challenge, seal.seq);
    seal.replies[seal.seq] = f.open;
    // A message may get more than one answer (a hello: its ack, then a
    // series offer), so keys are kept for the last few messages only.
    delete seal.replies[seal.seq - 16];
    ws.send(f.text);
    return true;
  }

  // onSeal: the kiosk's first message on a websocket. Hello goes only
  // after it, so that the device secret is sealed too.
  function onSeal(m) {
    if (canSeal) { seal = { key: m.key, challenge: m.challenge, seq: 0, replies: {} }; }
    send(helloMessage());
  }

  // unseal opens the kiosk's sealed answer with the key of the frame it
  // answers; an answer that does not open is dropped.
  function unseal(m) {
    var open = seal && seal.replies[m.seq];
    if (!open) { return null; }
    var text = open(m);
    try { return text === null ? null : JSON.parse(text); } catch (e) { return null; }
  }

  function backoff() {
    // Jittered, so that a whole hall does not reconnect at once after the
    // kiosk restarts.
    var delay = Math.min(10000, 500 * Math.pow(2, retries)) * (0.5 + Math.random());
    retries++;
    return delay;
  }

  // lost: the connection went; try again after a while. Before the phone
  // ever joined, the student keeps seeing "Connecting…": nothing alarming.
  function lost() {
    joined = false;
    if (stopped) { return; }
    // The kiosk keeps no choice on disk: after a restart it asks every
    // phone that answered again. Keep this phone's answer (a withdrawal
    // too), and send it once reconnected; a phone that is leaving sends
    // only the leave.
    if (!leaving && pending === null && (choice !== 'none' || answered)) { pending = choice; }
    if (round !== 0) { say('phone.reconnecting'); }
    renderChoice();
    setTimeout(connect, backoff());
  }

  function connect() {
    if (stopped) { return; }
    if (!window.WebSocket) { useHTTP(); return; }
    if (ws) { return; } // a try is under way
    var opened = false;
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    try {
      ws = new WebSocket(proto + location.host + K.prefix + '/ws');
    } catch (e) {
      ws = null;
      useHTTP();
      retrySocket();
      return;
    }
    var sock = ws;
    seal = null;
    var timer = setTimeout(function () { if (!opened) { sock.close(); } }, wsOpenWait);
    sock.onopen = function () {
      opened = true;
      wsRetries = 0;
      clearTimeout(timer);
      leaveHTTP();
      // hello follows the kiosk's first message, "seal"
    };
    sock.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m && m.type === 'sealed') { m = unseal(m); }
      if (m) { handle(m); }
    };
    sock.onclose = function () {
      clearTimeout(timer);
      if (ws === sock) { ws = null; seal = null; }
      if (stopped) { return; }
      // A websocket that did not open is blocked on the way (the page
      // itself came from the kiosk): use HTTP at once, and try the
      // websocket again now and then.
      if (!opened) {
        useHTTP();
        retrySocket();
        return;
      }
      lost();
    };
  }

  // useHTTP: websockets do not get through; speak over /api/phone.
  function useHTTP() {
    if (stopped) { return; }
    if (!overHTTP) {
      overHTTP = true;
      joined = false;
    }
    poll();
  }

  // retrySocket tries the websocket again later, backing off, while the
  // page is on HTTP.
  function retrySocket() {
    if (stopped || wsTimer !== null || !window.WebSocket) { return; }
    var delay = Math.min(30000, 1000 * Math.pow(2, wsRetries)) * (0.5 + Math.random());
    wsRetries++;
    wsTimer = setTimeout(function () { wsTimer = null; connect(); }, delay);
  }

  // leaveHTTP: a websocket opened; HTTP is needed no more. The hello on
  // the websocket gets the slip's ack, and an answer not yet acknowledged
  // goes out there.
  function leaveHTTP() {
    if (!overHTTP) { return; }
    overHTTP = false;
    httpGen++;
    polling = false;
    httpSeal = null;
    if (pollXHR) { try { pollXHR.abort(); } catch (e) { /* gone anyway */ } pollXHR = null; }
    if (wsTimer !== null) { clearTimeout(wsTimer); wsTimer = null; }
    joined = false;
    if (!leaving && pending === null && (choice !== 'none' || answered)) { pending = choice; }
  }

  // request posts body (JSON text) to /api/phone and calls back with the
  // status and the list of messages answered, or null.
  function request(body, cb, isPoll) {
    var gen = httpGen;
    var xhr = new XMLHttpRequest();
    xhr.open('POST', K.prefix + '/api/phone');
    xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.timeout = 45000; // longer than the kiosk's 25 s long-poll
    xhr.onload = function () {
      if (isPoll && pollXHR === xhr) { pollXHR = null; }
      if (gen !== httpGen) { return; } // the page went back to the websocket
      var list = null;
      try { list = JSON.parse(xhr.responseText); } catch (e) { /* a proxy's page */ }
      cb(xhr.status, list && typeof list.length === 'number' ? list : null);
    };
    xhr.onerror = xhr.ontimeout = function () {
      if (isPoll && pollXHR === xhr) { pollXHR = null; }
      if (gen !== httpGen) { return; }
      cb(0, null);
    };
    if (isPoll) { pollXHR = xhr; }
    xhr.send(body);
  }

  // withHTTPSeal calls back with the HTTP seal session, opening one if
  // needed, or with null if this phone sends in clear (or none opened).
  function withHTTPSeal(cb) {
    if (!canSeal) { cb(null, true); return; }
    if (httpSeal) { cb(httpSeal, true); return; }
    request('{"type":"seal"}', function (status, list) {
      var m = list && list[0];
      if (status !== 200 || !m || m.type !== 'seal') { cb(null, false); return; }
      httpSeal = { id: m.session, key: m.key, challenge: m.challenge, seq: 0 };
      cb(httpSeal, true);
    });
  }

  // post sends one message over HTTP, sealed as on the websocket: the
  // device secret and the choice never cross the network in clear. The
  // answer is a list of the messages the websocket would have sent.
  function post(msg, done, again) {
    var isPoll = !!done;
    var since = changes;
    var fail = function () { if (done) { done(false); } else { lost(); } };
    withHTTPSeal(function (hs, ok) {
      if (!ok) { fail(); return; }
      var body = {};
      for (var k in msg) { if (msg.hasOwnProperty(k)) { body[k] = msg[k]; } }
      body.device = device;
      var text = JSON.stringify(body), open = null;
      if (hs) {
        hs.seq++;
        var f;
        // A message too long to seal is not sent in clear instead.
        try { f = window.KioskSeal.sealFrame(hs.key, text, hs.challenge, hs.seq); } catch (e) { fail(); return; }
        open = f.open;
        text = '{"type":"sealed","session":"' + hs.id + '",' + f.text.slice('{"type":"sealed",'.length);
      }
      request(text, function (status, list) {
        if (!list) { fail(); return; }
        var out = [];
        for (var i = 0; i < list.length; i++) {
          var m = list[i];
          if (m && m.type === 'sealed') {
            var t = open ? open(m) : null;
            try { m = t === null ? null : JSON.parse(t); } catch (e) { m = null; }
          }
          if (m && m.type === 'error' && m.code === 'seal-expired') {
            // The session is gone: open a new one and say it again, once.
            if (httpSeal === hs) { httpSeal = null; }
            if (!again) { post(msg, done, true); } else { fail(); }
            return;
          }
          if (m) { out.push(m); }
        }
        for (var j = 0; j < out.length; j++) {
          // A long-poll's hello may be answered before a slip sent since,
          // and arrive after that slip's ack: its ack is out of date.
          if (isPoll && since !== changes && out[j].type === 'ack') { continue; }
          handle(out[j]);
        }
        if (done) { done(status === 200); }
      }, isPoll);
    });
  }

  // poll says hello over HTTP, and then keeps saying it with the last
  // tally version seen, so that the kiosk answers when anything changes.
  function poll() {
    if (stopped || polling || !overHTTP) { return; }
    polling = true;
    var msg = helloMessage();
    if (joined && version !== null) { msg.seen = version; }
    post(msg, function (ok) {
      polling = false;
      if (stopped) { return; }
      if (ok) {
        retries = 0;
        poll();
      } else {
        lost();
      }
    });
  }

  function handle(m) {
    switch (m.type) {
      case 'seal': onSeal(m); break;
      case 'round': onRound(m); break;
      case 'ack': onAck(m); break;
      case 'tally': onTally(m); break;
      case 'series': onSeries(m); break;
      case 'error': onError(m); break;
    }
  }

  function onRound(m) {
    var changed = round !== 0 && m.round !== round;
    round = m.round;
    current = m;
    if (m.closed) {
      stopped = true;
      say('phone.closed');
      hideSections($('status'));
      if (ws) { ws.close(); }
      return;
    }
    var lecturerOnly = m.mode === 'lecturer-only';
    if (changed) {
      choice = 'none';
      pending = null;
      answered = false;
      seriesDay = '';
      // A lecturer-only round asks nothing: "answer again" would be untrue.
      say(lecturerOnly ? 'phone.lecturer_only_now' : 'phone.round_changed');
      // Heard before the hello's ack (a tap waiting for the connection was
      // dropped with the old round), this must not give way to "Connected.".
      roundNews = !joined;
      // A phone that consented earlier in this series hears so in answer
      // to a hello; saying it again needs no fresh QR code.
      if (m.series && joined) { send({ type: 'hello', join: joinToken, device: device }); }
    }
    if (m.purpose) { K.plain($('purpose'), m.purpose); } else { K.fill($('purpose'), 'phone.waiting_purpose'); }
    $('facts').hidden = lecturerOnly;
    $('notice-short').hidden = lecturerOnly;
    $('lecturer-only').hidden = !lecturerOnly;
    // The notice is in the language of its template, which may not be the
    // page's: screen readers must pronounce it right (WCAG 3.1.2).
    var lang = m.template || 'en';
    $('purpose').lang = $('notice-short').lang = $('notice-text').lang = lang;
    renderNotice(m);
    // Nobody can consent to a recording whose purpose they were not told
    // (R4), and a lecturer-only recording asks nobody. Until the purpose
    // is known the buttons keep their place, unseen, so nothing moves.
    $('choose').className = 'choose' + (m.purpose ? '' : ' waiting');
    $('page').className = '';
    $('choose').hidden = lecturerOnly;
    $('leave').hidden = lecturerOnly;
    $('tally').hidden = lecturerOnly;
    renderChoice();
  }

  function fieldList(notice, names) {
    var dl = document.createElement('dl');
    dl.className = 'notice-fields';
    for (var i = 0; i < FIELDS.length; i++) {
      var f = FIELDS[i];
      if (!notice[f]) { continue; }
      var dt = document.createElement('dt');
      dt.textContent = names[f] || f;
      var dd = document.createElement('dd');
      dd.textContent = notice[f];
      dl.appendChild(dt);
      dl.appendChild(dd);
    }
    return dl;
  }

  // keyFacts are the few fields shown before the buttons, each cut to two
  // lines; the full notice below has them whole.
  function keyFacts(notice, names) {
    var box = document.createDocumentFragment();
    for (var i = 0; i < SHORT.length; i++) {
      var f = SHORT[i];
      if (!notice[f]) { continue; }
      var p = document.createElement('p');
      p.className = 'key-fact';
      var b = document.createElement('strong');
      b.textContent = (names[f] || f) + ': ';
      p.appendChild(b);
      p.appendChild(document.createTextNode(notice[f]));
      box.appendChild(p);
    }
    return box;
  }

  function renderNotice(m) {
    var shortBox = $('notice-short');
    var full = $('notice-text');
    shortBox.innerHTML = '';
    full.innerHTML = '';
    if (m.notice && typeof m.notice === 'object') {
      var names = labels[m.template || 'en'] || {};
      shortBox.appendChild(keyFacts(m.notice, names));
      full.appendChild(fieldList(m.notice, names));
    } else {
      full.textContent = m.notice || t('phone.no_notice');
    }
  }

  function onSeries(m) {
    if (m.round !== round) { return; }
    // Every phone in a round of a series hears this after hello; "none"
    // means no earlier consent.
    seriesDay = /^\d{4}-\d{2}-\d{2}$/.test(m.consented_on) ? m.consented_on : '';
    renderSeries();
  }

  // renderSeries lets a phone that consented earlier in the series
  // confirm that consent with one tap (R5): the consent button says so.
  // It is still an ordinary slip, counted in this room, and the two
  // buttons stay two, of equal weight.
  function renderSeries() {
    var show = !!seriesDay && !!current && !!current.series && choice === 'none' && pending === null;
    if (!show) { K.fill($('consent-label'), 'phone.consent'); return; }
    var p = seriesDay.split('-');
    var day = new Date(Number(p[0]), Number(p[1]) - 1, Number(p[2])).toLocaleDateString(K.lang());
    K.fill($('consent-label'), 'phone.series_consent', { date: day });
  }

  function onAck(m) {
    if (m.round && m.round !== round) { return; }
    choice = m.choice;
    if (choice !== 'none') { answered = true; }
    if (!joined) {
      joined = true;
      retries = 0;
      if (!roundNews) { say('phone.connected'); }
      roundNews = false;
      problem(null);
      // An answer given while the connection was down goes out now; of a
      // student who left meanwhile, only the leave does, whatever the kiosk
      // says the phone holds (after a restart it may not know, and still
      // wait for this phone), and the leave's own ack says it is done.
      if (leaving) {
        sendLeave();
        renderChoice();
        return;
      }
      if (pending !== null) { sendChoice(); }
    } else if (pending === choice) {
      pending = null;
    }
    if (leaving && choice === 'none') {
      stopped = true;
      say('phone.left');
      hideSections($('status'));
      if (ws) { ws.close(); }
      return;
    }
    renderChoice();
  }

  function onTally(m) {
    // Nobody is counted in a lecturer-only round, nor once the session is
    // closed: a count would mislead.
    if (stopped) { return; }
    $('tally').hidden = !!current && current.mode === 'lecturer-only';
    if (m.version !== undefined) { version = m.version; }
    if (m.headcount > 0) {
      K.fill($('tally-count'), 'phone.tally', { received: m.received, headcount: m.headcount });
    } else {
      K.fill($('tally-count'), 'phone.tally_no_headcount', { received: m.received });
    }
    K.fill($('tally-outcome'), m.unlocked ? 'phone.outcome_unlocked' : 'phone.outcome_locked');
  }

  function onError(m) {
    switch (m.code) {
      case 'join-expired':
      case 'join-invalid':
      case 'join-required':
        stopped = true;
        problem('phone.rejoin', { address: location.host + '/k' });
        say('phone.not_joined');
        hideSections($('problem'));
        if (ws) { ws.close(); }
        break;
      case 'closed':
        stopped = true;
        say('phone.closed');
        hideSections($('status'));
        break;
      case 'stale-round':
        pending = null;
        say('phone.round_changed');
        renderChoice();
        break;
      default:
        // storage, unavailable, rate-limited: keep the answer and try again.
        if (!joined) {
          // The hello itself was turned away for now: reconnect with backoff
          // (over HTTP, the failed poll does that by itself).
          if (ws) { ws.close(); }
          return;
        }
        if (leaving) {
          say('phone.retrying');
          setTimeout(function () { if (joined && !stopped) { sendLeave(); } }, 2000 * (0.5 + Math.random()));
        } else if (pending !== null) {
          say('phone.retrying');
          setTimeout(sendChoice, 2000 * (0.5 + Math.random()));
        }
    }
  }

  function sendChoice() {
    if (pending === null || leaving) { return; }
    if (joined) {
      changes++;
      send({ type: 'slip', choice: pending, round: round });
    }
    renderChoice();
  }

  function sendLeave() {
    changes++;
    send({ type: 'leave' });
  }

  function choose(c) {
    if (leaving) { return; } // the leave is on its way: nothing to answer
    pending = c;
    sendChoice();
  }

  function renderChoice() {
    renderSeries();
    var shown = pending !== null ? pending : choice;
    $('consent').setAttribute('aria-pressed', String(shown === 'consent'));
    $('refuse').setAttribute('aria-pressed', String(shown === 'refuse'));
    var key;
    if (pending !== null) { key = joined ? 'phone.sending' : 'phone.queued'; }
    else { key = currentKeys[choice] || 'phone.current_none'; }
    K.fill($('current'), key);
  }

  $('consent').onclick = function () { choose('consent'); };
  $('refuse').onclick = function () { choose('refuse'); };
  $('leave').onclick = function () {
    leaving = true;
    // An answer not sent yet is dropped, so that it cannot follow the leave.
    pending = null;
    if (joined) { sendLeave(); }
  };

  K.initSwitcher(renderSeries);
  // The page may carry the round as the kiosk had it when it served the
  // page: the notice and the buttons show while the connection is still
  // being made, a round or more sooner on a slow network, and a tap waits
  // for the connection. The round that answers hello has the last word.
  var served = null;
  try { served = JSON.parse($('kiosk-round').textContent); } catch (e) { served = null; }
  if (served && served.type === 'round') { onRound(served); }
  connect();
})();

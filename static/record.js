/* The printable record (R8): every round kept, its notice, what every
   phone was told, the headcount's changes, and each interval in which
   recording was allowed. Times are ISO 8601 with the laptop's offset from
   UTC, so a printed record says exactly when, wherever it is read. The
   lecturer and room lines are typed here and kept only in this browser:
   the kiosk stores no name. Plain ES5. */
(function () {
  'use strict';
  var t = window.Kiosk.t;
  var $ = function (id) { return document.getElementById(id); };
  var labels = {}; // lang -> field labels from the notice templates
  var fields = window.Kiosk.data.fields || [];
  var last = null;

  function get(path, done) { window.Kiosk.request('GET', path, null, done); }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  // iso writes d in local time as ISO 8601 with its UTC offset:
  // 2026-11-23T10:00:07+01:00.
  function iso(d) {
    var off = -d.getTimezoneOffset();
    var sign = off >= 0 ? '+' : '-';
    off = Math.abs(off);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) +
      sign + pad(Math.floor(off / 60)) + ':' + pad(off % 60);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function when(s) {
    if (!s) { return t('rec.unknown'); }
    var d = new Date(s);
    return isNaN(d.getTime()) ? s : iso(d);
  }

  function row(dl, key, value) {
    dl.appendChild(el('dt', null, t(key)));
    dl.appendChild(el('dd', null, value));
  }

  function notice(r) {
    var box = el('div', 'notice-text');
    if (typeof r.notice === 'string') {
      box.textContent = r.notice || t('rec.no_notice');
      return box;
    }
    var names = labels[r.template || 'en'] || labels.en || {};
    var dl = el('dl', 'notice-fields');
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (r.notice && r.notice[f]) {
        dl.appendChild(el('dt', null, names[f] || f));
        dl.appendChild(el('dd', null, r.notice[f]));
      }
    }
    box.appendChild(dl);
    return box;
  }

  // sameSession: a new round replaces the last one within the same
  // change (well under a second); a round that opens later than the last
  // one ended starts a new session (the last one was closed, or the kiosk
  // stopped). A person cannot close a session and start a round faster.
  var sameSession = 2000;

  // numbers gives each round its number within its session, from 1.
  function numbers(rounds) {
    var out = [];
    var n = 0;
    for (var i = 0; i < rounds.length; i++) {
      var prev = rounds[i - 1];
      var gap = prev && prev.closed_at ? new Date(rounds[i].opened_at).getTime() - new Date(prev.closed_at).getTime() : Infinity;
      if (!(gap < sameSession)) { n = 0; }
      n++;
      out.push(n);
    }
    return out;
  }

  // statements are what every phone showed before its owner chose.
  function statements() {
    var ul = el('ul', 'facts');
    var keys = ['phone.all_must', 'phone.anonymous', 'phone.withdraw', 'phone.no_consequence'];
    for (var i = 0; i < keys.length; i++) { ul.appendChild(el('li', null, t(keys[i]))); }
    return ul;
  }

  // changes lists every headcount set in the round, and when (R8).
  function changes(list) {
    var table = el('table');
    var head = el('tr');
    head.appendChild(el('th', null, t('rec.at')));
    head.appendChild(el('th', null, t('rec.headcount')));
    table.appendChild(head);
    for (var i = 0; i < list.length; i++) {
      var c = list[i];
      var tr = el('tr');
      tr.appendChild(el('td', null, when(c.at)));
      tr.appendChild(el('td', null, c.headcount));
      table.appendChild(tr);
    }
    return table;
  }

  function render(data) {
    $('meta').textContent = t('rec.meta', { at: when(data.generated_at), days: data.retention_days });
    var root = $('rounds');
    root.innerHTML = '';
    if (!data.rounds.length) { root.appendChild(el('p', null, t('rec.empty'))); return; }
    var nums = numbers(data.rounds);
    for (var i = data.rounds.length - 1; i >= 0; i--) {
      var r = data.rounds[i];
      var sec = el('section', 'round');
      sec.appendChild(el('h2', null, t('rec.round', { round: nums[i], purpose: r.purpose })));
      var dl = el('dl', 'facts-list');
      row(dl, 'rec.mode', t('rec.mode.' + r.mode));
      if (r.series) { row(dl, 'rec.series', r.series); }
      row(dl, 'rec.opened', when(r.opened_at));
      row(dl, 'rec.closed', r.current ? t('rec.current') : when(r.closed_at));
      if (r.mode !== 'lecturer-only') {
        row(dl, 'rec.headcount', r.headcount);
        row(dl, 'rec.received', r.received === null ? t('rec.unknown') : r.received);
        row(dl, 'rec.paper', r.paper);
      }
      row(dl, 'rec.outcome', t('rec.outcome.' + r.outcome + (r.mode === 'lecturer-only' && r.outcome === 'unlocked' ? '_lecturer' : '')));
      row(dl, 'rec.hash', r.notice_hash);
      row(dl, 'rec.kiosk_round', r.round);
      sec.appendChild(dl);

      if (r.headcount_changes && r.headcount_changes.length) {
        sec.appendChild(el('h3', null, t('rec.headcount_changes')));
        sec.appendChild(changes(r.headcount_changes));
      }

      sec.appendChild(el('h3', null, t('rec.intervals')));
      if (!r.intervals.length) {
        sec.appendChild(el('p', null, t('rec.never')));
      } else {
        var table = el('table');
        var head = el('tr');
        head.appendChild(el('th', null, t('rec.from')));
        head.appendChild(el('th', null, t('rec.to')));
        head.appendChild(el('th', null, t('rec.ended_by')));
        table.appendChild(head);
        for (var j = 0; j < r.intervals.length; j++) {
          var iv = r.intervals[j];
          var tr = el('tr');
          tr.appendChild(el('td', null, when(iv.start)));
          tr.appendChild(el('td', null, iv.end ? when(iv.end) : (iv.ended_by ? t('rec.unknown') : t('rec.still'))));
          tr.appendChild(el('td', null, iv.ended_by ? t('rec.why.' + iv.ended_by) : ''));
          table.appendChild(tr);
        }
        sec.appendChild(table);
      }
      sec.appendChild(el('h3', null, t('rec.notice')));
      sec.appendChild(notice(r));
      if (r.mode !== 'lecturer-only') {
        sec.appendChild(el('h3', null, t('rec.statements')));
        sec.appendChild(statements());
      }
      root.appendChild(sec);
    }
  }

  function problem(key) {
    $('problem').textContent = t(key);
    $('problem').hidden = false;
  }

  $('print').onclick = function () { window.print(); };

  // The lecturer and room lines: typed here, kept in this browser only.
  ['lecturer', 'room'].forEach(function (f) {
    var input = $('rec-' + f);
    try { input.value = localStorage.getItem('consent-kiosk-record-' + f) || ''; } catch (e) { /* this visit only */ }
    input.oninput = function () {
      try { localStorage.setItem('consent-kiosk-record-' + f, input.value); } catch (e) { /* this visit only */ }
    };
  });

  window.Kiosk.initSwitcher(function () { if (last) { render(last); } });
  (function () {
    get('/api/templates', function (status, tpl) {
      if (status === 200 && tpl) {
        fields = tpl.fields || fields;
        for (var i = 0; i < tpl.templates.length; i++) { labels[tpl.templates[i].lang] = tpl.templates[i].labels; }
      }
      get('/api/record', function (status2, data) {
        if (status2 === 200 && data) { last = data; render(data); } else { problem(status2 === 401 ? 'rec.auth' : 'rec.failed'); }
      });
    });
  })();
})();

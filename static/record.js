/* The printable record (R8): every round kept, its notice, and each
   interval in which recording was allowed. Plain ES5. */
(function () {
  'use strict';
  var t = window.Kiosk.t;
  var $ = function (id) { return document.getElementById(id); };
  var labels = {}; // lang -> field labels from the notice templates
  var fields = [];

  function get(path, done) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', path);
    xhr.onload = function () {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      done(xhr.status, data);
    };
    xhr.onerror = function () { done(0, null); };
    xhr.send();
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
    return isNaN(d.getTime()) ? s : d.toLocaleString();
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

  function render(data) {
    $('meta').textContent = t('rec.meta', { at: when(data.generated_at), days: data.retention_days });
    var root = $('rounds');
    root.innerHTML = '';
    if (!data.rounds.length) { root.appendChild(el('p', null, t('rec.empty'))); return; }
    for (var i = data.rounds.length - 1; i >= 0; i--) {
      var r = data.rounds[i];
      var sec = el('section', 'round');
      sec.appendChild(el('h2', null, t('rec.round', { round: r.round, purpose: r.purpose })));
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
      sec.appendChild(dl);

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
      // Every headcount set in the round, and when (R8).
      var changes = r.headcount_changes || [];
      if (changes.length) {
        sec.appendChild(el('h3', null, t('rec.headcounts')));
        var ul = el('ul');
        for (var h = 0; h < changes.length; h++) {
          ul.appendChild(el('li', null, t('rec.headcount_at', { headcount: changes[h].headcount, at: when(changes[h].at) })));
        }
        sec.appendChild(ul);
      }
      sec.appendChild(el('h3', null, t('rec.notice')));
      sec.appendChild(notice(r));
      root.appendChild(sec);
    }
  }

  function problem(key) {
    $('problem').textContent = t(key);
    $('problem').hidden = false;
  }

  $('print').onclick = function () { window.print(); };

  window.Kiosk.load(window.Kiosk.lang(), '', function () {
    get('/api/templates', function (status, tpl) {
      if (status === 200 && tpl) {
        fields = tpl.fields;
        for (var i = 0; i < tpl.templates.length; i++) { labels[tpl.templates[i].lang] = tpl.templates[i].labels; }
      }
      get('/api/record', function (status2, data) {
        if (status2 === 200 && data) { render(data); } else { problem(status2 === 401 ? 'proj.auth' : 'rec.failed'); }
      });
    });
  });
})();

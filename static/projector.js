/* The projector view: what the room may see and nothing else. The banner,
   the QR code and typed join code, how many answers are in, the purpose
   and the kiosk's warnings. No control and nothing the lecturer types is
   on this page; the console (/console) holds those. With a second
   language (?lang2=, or the console's choice) the words a hall reads are
   shown in both. Escape goes back to the console. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var $ = function (id) { return document.getElementById(id); };
  var joinURL = '';
  var langs = {};
  for (var i = 0; i < (K.data.languages || []).length; i++) { langs[K.data.languages[i].code] = true; }

  function render(st) {
    $('auth-problem').hidden = true;
    var d = K.state.renderBanner(st);
    K.state.renderWarnings($('warnings'), st);
    var lecturerOnly = st.mode === 'lecturer-only';
    // A closed session asks nobody anything: no QR code, no count.
    $('join').hidden = $('typed').hidden = !!d.closed;
    $('stage').className = 'stage' + (d.closed ? ' closed' : '');
    $('count').className = lecturerOnly || d.closed ? 'big words' : 'big';
    $('slips').hidden = lecturerOnly || d.closed;
    if (d.closed) {
      K.fill($('count'), 'proj.count_closed');
      K.plain($('issued'), '');
    } else if (lecturerOnly) {
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
    if (d.closed) { K.plain($('purpose'), ''); }
    else if (st.purpose) { K.fill($('purpose'), 'proj.purpose', { purpose: st.purpose }); }
    else { K.fill($('purpose'), 'proj.no_purpose'); }
    $('mode-note').hidden = !(lecturerOnly || d.closed);
    if (d.closed) { K.fill($('mode-note'), 'proj.closed_note'); }
    else if (lecturerOnly) { K.fill($('mode-note'), 'proj.lecturer_only_note'); }
    K.fill($('scan-heading'), lecturerOnly ? 'proj.scan_lecturer_only' : 'proj.scan');
    var q = st.notice && typeof st.notice === 'object' ? st.notice.questions : '';
    if (q) { K.fill($('questions'), 'proj.questions', { questions: q }); }
    $('questions').hidden = !(lecturerOnly && q) || !!d.closed;
  }

  // offline: when the kiosk does not answer, the page must not keep showing
  // READY TO RECORD.
  function offline(status, answer) {
    var closed = K.state.signedOutAtClose(status, answer);
    if (closed) { render({ closed: true }); } else { K.state.renderBanner(null); }
    K.fill($('auth-problem'), closed ? 'proj.auth_closed' : 'proj.auth');
    $('auth-problem').hidden = status !== 401;
  }

  function refreshJoin() {
    K.request('GET', '/api/join', null, function (status, j) {
      if (status === 200 && j && j.url !== joinURL) {
        joinURL = j.url;
        $('qr').src = '/qr.png?for=' + encodeURIComponent(j.url.split('/').pop());
        K.plain($('code-url'), j.code_url);
        // Grouped in threes: easier to read from the back and to type.
        K.plain($('code'), j.code.slice(0, 3) + '\u2009' + j.code.slice(3));
      }
    });
  }

  // Escape, or C, goes back to the console; the room sees no hint of it.
  document.onkeydown = function (ev) {
    if (ev.key === 'Escape' || ev.key === 'c' || ev.key === 'C') { location.href = '/console'; }
  };

  // The second language: ?lang2= first, else the lecturer's last choice.
  var lang2 = '';
  var m = /[?&]lang2=([a-z]+)/.exec(location.search);
  try { lang2 = m ? m[1] : (localStorage.getItem('consent-kiosk-lang2') || ''); } catch (e) { lang2 = m ? m[1] : ''; }
  if (!langs[lang2]) { lang2 = ''; }

  // The console in another window of this browser picks the languages.
  window.addEventListener('storage', function (ev) {
    if (ev.key === 'consent-kiosk-lang2') { K.load(K.lang(), langs[ev.newValue] ? ev.newValue : ''); }
  });

  K.load(K.lang(), lang2, function () {
    K.state.watch(render, offline);
    refreshJoin();
    setInterval(refreshJoin, 5000);
  });
})();

/* The page for phones that cannot scan: the student types the code shown
   on the projector; the kiosk checks it and sends the phone on to the same
   phone page the QR code leads to. A wrong code comes back here with
   ?error=CODE, which this script explains. Plain ES5 for old phones. */
(function () {
  'use strict';
  var K = window.Kiosk;
  var problems = {
    'join-invalid': 'join.error_invalid',
    'join-expired': 'join.error_expired',
    'rate-limited': 'join.error_busy',
    'invalid': 'join.error_invalid'
  };
  var m = /[?&]error=([a-z-]+)/.exec(location.search);

  K.initSwitcher();
  K.load(K.lang(), '', function () {
    if (m && problems[m[1]]) {
      var p = document.getElementById('problem');
      K.fill(p, problems[m[1]]);
      p.hidden = false;
      var input = document.getElementById('code');
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', 'problem code-hint');
      input.focus();
    }
  });
})();

/*
 * seal.js seals a phone's message to the kiosk's X25519 public key, so that
 * someone who shares the room's Wi-Fi password and captures plain ws:// frames
 * cannot read a slip.
 *
 * The page runs on plain http:// origins, where browsers withhold WebCrypto,
 * and on old phones, so everything here is ES5 with typed arrays: no BigInt,
 * no build step, no dependencies. The only randomness is
 * crypto.getRandomValues.
 *
  * Construction (mirrored by seal/seal.go):
 *   shared = X25519(ephemeral secret, kiosk public)      RFC 7748
 *   key    = HChaCha20(shared, 16 zero bytes)            draft-irtf-cfrg-xchacha
 *   reply  = HChaCha20(shared, "kiosk-seal-reply")
 *   aad    = epk || kiosk public || challenge || seq (4 bytes, big-endian)
 *   box    = ChaCha20-Poly1305(key, random 12-byte nonce,
 *                              plaintext padded with spaces to 96 or 256
 *                              bytes, aad)                 RFC 8439
 * The kiosk's answer is sealed under reply with the same aad. The challenge
 * is the connection's, sent by the kiosk in its first message, and seq rises
 * with every frame, so a captured frame cannot be played again.
 *
 * Field arithmetic follows the TweetNaCl layout: an element of GF(2^255-19)
 * is 16 limbs of 16 bits held in a Float64Array, so that every product and
 * sum stays an exact integer below 2^53.
 */
(function (global) {
  'use strict';

  // Every sealed plaintext is padded to one of these lengths: slips fit the
  // first, so a consent and a refusal make frames of the same size on the
  // wire; a hello, with its device secret, needs the second. Answers from
  // the kiosk are always REPLY_LENGTH.
  var PADDED_LENGTH = 96, LONG_LENGTH = 256, REPLY_LENGTH = 256;
  var REPLY_INFO = [107, 105, 111, 115, 107, 45, 115, 101, 97, 108, 45, 114, 101, 112, 108, 121]; // "kiosk-seal-reply"

  // ---- GF(2^255-19) ------------------------------------------------------

  function gf(init) {
    var r = new Float64Array(16);
    if (init) {
      for (var i = 0; i < init.length; i++) r[i] = init[i];
    }
    return r;
  }

  // (A - 2) / 4 for curve25519, the constant of the ladder's doubling step.
  var A24 = gf([0xdb41, 1]);

  function carry(o) {
    var c;
    for (var i = 0; i < 16; i++) {
      // Math.floor, not >>, because limbs can exceed 32 bits after a product
      // and can be negative after a subtraction.
      c = Math.floor(o[i] / 65536);
      o[i] -= c * 65536;
      // 2^256 = 38 (mod p), so what overflows the top limb folds back in.
      if (i < 15) o[i + 1] += c; else o[0] += 38 * c;
    }
  }

  // Swaps p and q when b is 1 without a branch on b, which is a bit of the
  // secret scalar.
  function cswap(p, q, b) {
    var mask = ~(b - 1), t;
    for (var i = 0; i < 16; i++) {
      t = mask & (p[i] ^ q[i]);
      p[i] ^= t;
      q[i] ^= t;
    }
  }

  function add(o, a, b) {
    for (var i = 0; i < 16; i++) o[i] = a[i] + b[i];
  }

  function sub(o, a, b) {
    for (var i = 0; i < 16; i++) o[i] = a[i] - b[i];
  }

  // One scratch row for every product: a fresh array per call made the
  // garbage collector the main cost of a scalar multiplication.
  var mulScratch = new Float64Array(31);

  function mul(o, a, b) {
    var t = mulScratch, i, j, ai;
    for (i = 0; i < 31; i++) t[i] = 0;
    for (i = 0; i < 16; i++) {
      ai = a[i];
      for (j = 0; j < 16; j++) t[i + j] += ai * b[j];
    }
    for (i = 0; i < 15; i++) t[i] += 38 * t[i + 16];
    for (i = 0; i < 16; i++) o[i] = t[i];
    carry(o);
    carry(o);
  }

  function sqr(o, a) {
    mul(o, a, a);
  }

  // o = a^(p-2) = 1/a by Fermat; p-2 = 2^255 - 21, whose bits are all ones
  // except bits 2 and 4.
  function invert(o, a) {
    var c = gf(), i;
    for (i = 0; i < 16; i++) c[i] = a[i];
    for (i = 253; i >= 0; i--) {
      sqr(c, c);
      if (i !== 2 && i !== 4) mul(c, c, a);
    }
    for (i = 0; i < 16; i++) o[i] = c[i];
  }

  function unpack(o, n) {
    for (var i = 0; i < 16; i++) o[i] = n[2 * i] + (n[2 * i + 1] << 8);
    // RFC 7748 §5: the top bit of u is ignored.
    o[15] &= 0x7fff;
  }

  // Writes the unique representative below p.
  function pack(o, n) {
    var t = gf(), m = gf(), i, j, b;
    for (i = 0; i < 16; i++) t[i] = n[i];
    carry(t);
    carry(t);
    carry(t);
    // After the carries t < 2^256 < 3p, so subtracting p at most twice
    // reaches the canonical value.
    for (j = 0; j < 2; j++) {
      m[0] = t[0] - 0xffed;
      for (i = 1; i < 15; i++) {
        m[i] = t[i] - 0xffff - ((m[i - 1] >> 16) & 1);
        m[i - 1] &= 0xffff;
      }
      m[15] = t[15] - 0x7fff - ((m[14] >> 16) & 1);
      b = (m[15] >> 16) & 1;
      m[14] &= 0xffff;
      cswap(t, m, 1 - b);
    }
    for (i = 0; i < 16; i++) {
      o[2 * i] = t[i] & 0xff;
      o[2 * i + 1] = t[i] >> 8;
    }
  }

  // x25519 returns X25519(scalar, u) as 32 bytes (RFC 7748 §5), using the
  // Montgomery ladder with a constant sequence of operations.
  function x25519(scalar, u) {
    if (scalar.length !== 32 || u.length !== 32) {
      throw new Error('x25519: scalar and u must be 32 bytes');
    }
    var z = new Uint8Array(32), x = gf(), a = gf(), b = gf(), c = gf(),
      d = gf(), e = gf(), f = gf(), out = new Uint8Array(32), i, bit;
    for (i = 0; i < 32; i++) z[i] = scalar[i];
    z[0] &= 248;
    z[31] = (z[31] & 127) | 64;
    unpack(x, u);
    for (i = 0; i < 16; i++) b[i] = x[i];
    a[0] = d[0] = 1;
    for (i = 254; i >= 0; i--) {
      bit = (z[i >>> 3] >>> (i & 7)) & 1;
      cswap(a, b, bit);
      cswap(c, d, bit);
      add(e, a, c);
      sub(a, a, c);
      add(c, b, d);
      sub(b, b, d);
      sqr(d, e);
      sqr(f, a);
      mul(a, c, a);
      mul(c, b, e);
      add(e, a, c);
      sub(a, a, c);
      sqr(b, a);
      sub(c, d, f);
      mul(a, c, A24);
      add(a, a, d);
      mul(c, c, a);
      mul(a, d, f);
      mul(d, b, x);
      sqr(b, e);
      cswap(a, b, bit);
      cswap(c, d, bit);
    }
    invert(c, c);
    mul(a, a, c);
    pack(out, a);
    wipe(z);
    wipe(mulScratch);
    return out;
  }

  var BASE = new Uint8Array(32);
  BASE[0] = 9;

  // x25519Base returns the public key for a 32-byte secret.
  function x25519Base(scalar) {
    return x25519(scalar, BASE);
  }

  // ---- ChaCha20 and HChaCha20 (RFC 8439 §2.3, xchacha draft §2.2) -------

  var SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

  function load32(b, i) {
    return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
  }

  function store32(b, i, v) {
    b[i] = v & 0xff;
    b[i + 1] = (v >>> 8) & 0xff;
    b[i + 2] = (v >>> 16) & 0xff;
    b[i + 3] = (v >>> 24) & 0xff;
  }

  function rotl(v, n) {
    return (v << n) | (v >>> (32 - n));
  }

  function quarter(x, a, b, c, d) {
    x[a] = (x[a] + x[b]) | 0; x[d] = rotl(x[d] ^ x[a], 16);
    x[c] = (x[c] + x[d]) | 0; x[b] = rotl(x[b] ^ x[c], 12);
    x[a] = (x[a] + x[b]) | 0; x[d] = rotl(x[d] ^ x[a], 8);
    x[c] = (x[c] + x[d]) | 0; x[b] = rotl(x[b] ^ x[c], 7);
  }

  function twentyRounds(x) {
    for (var i = 0; i < 10; i++) {
      quarter(x, 0, 4, 8, 12);
      quarter(x, 1, 5, 9, 13);
      quarter(x, 2, 6, 10, 14);
      quarter(x, 3, 7, 11, 15);
      quarter(x, 0, 5, 10, 15);
      quarter(x, 1, 6, 11, 12);
      quarter(x, 2, 7, 8, 13);
      quarter(x, 3, 4, 9, 14);
    }
  }

  function initState(key, tail) {
    var s = new Array(16), i;
    if (key.length !== 32) throw new Error('chacha20: key must be 32 bytes');
    for (i = 0; i < 4; i++) s[i] = SIGMA[i];
    for (i = 0; i < 8; i++) s[4 + i] = load32(key, 4 * i);
    for (i = 0; i < 4; i++) s[12 + i] = tail[i];
    return s;
  }

  // chacha20 XORs data with the ChaCha20 key stream for key, a 12-byte nonce
  // and the first block counter, and returns the result as a new array.
  function chacha20(key, counter, nonce, data) {
    if (nonce.length !== 12) throw new Error('chacha20: nonce must be 12 bytes');
    if (Math.ceil(data.length / 64) + counter > 4294967296) {
      throw new Error('chacha20: block counter would wrap');
    }
    var s = initState(key, [counter >>> 0, load32(nonce, 0), load32(nonce, 4), load32(nonce, 8)]);
    var out = new Uint8Array(data.length), block = new Uint8Array(64),
      x = new Array(16), pos, i, n;
    for (pos = 0; pos < data.length; pos += 64) {
      for (i = 0; i < 16; i++) x[i] = s[i];
      twentyRounds(x);
      for (i = 0; i < 16; i++) store32(block, 4 * i, (x[i] + s[i]) | 0);
      n = Math.min(64, data.length - pos);
      for (i = 0; i < n; i++) out[pos + i] = data[pos + i] ^ block[i];
      s[12] = (s[12] + 1) >>> 0;
    }
    wipe(block);
    return out;
  }

  // hchacha20 derives a 32-byte key from a 32-byte key and a 16-byte input.
  function hchacha20(key, input) {
    if (input.length !== 16) throw new Error('hchacha20: input must be 16 bytes');
    var x = initState(key, [load32(input, 0), load32(input, 4), load32(input, 8), load32(input, 12)]);
    var out = new Uint8Array(32), i;
    twentyRounds(x);
    for (i = 0; i < 4; i++) {
      store32(out, 4 * i, x[i]);
      store32(out, 16 + 4 * i, x[12 + i]);
    }
    return out;
  }

  // ---- Poly1305 (RFC 8439 §2.5) ------------------------------------------

  // Numbers mod 2^130-5 are ten limbs of 13 bits, so that a limb product is
  // below 2^30 and a row of ten of them stays exact in a double.

  function limbs13(bytes) {
    var o = new Float64Array(10), i, off, k, v;
    for (i = 0; i < 10; i++) {
      off = 13 * i;
      k = off >>> 3;
      v = (bytes[k] | 0) | ((bytes[k + 1] | 0) << 8) | ((bytes[k + 2] | 0) << 16);
      o[i] = (v >>> (off & 7)) & 0x1fff;
    }
    return o;
  }

  // Propagates carries through h and folds what passes 2^130 back in times 5
  // (2^130 = 5 mod p), until nothing passes.
  function polyCarry(h) {
    var c, i;
    do {
      c = 0;
      for (i = 0; i < 10; i++) {
        h[i] += c;
        c = Math.floor(h[i] / 8192);
        h[i] -= c * 8192;
      }
      h[0] += 5 * c;
    } while (c !== 0);
  }

  // poly1305 returns the 16-byte tag of msg under a one-time 32-byte key.
  function poly1305(key, msg) {
    if (key.length !== 32) throw new Error('poly1305: key must be 32 bytes');
    var rb = new Uint8Array(17), i, j, pos, n, d = new Float64Array(10),
      block = new Uint8Array(17), h = new Float64Array(10), r, r5 = new Float64Array(10);
    for (i = 0; i < 16; i++) rb[i] = key[i];
    rb[3] &= 15; rb[7] &= 15; rb[11] &= 15; rb[15] &= 15;
    rb[4] &= 252; rb[8] &= 252; rb[12] &= 252;
    r = limbs13(rb);
    for (i = 0; i < 10; i++) r5[i] = 5 * r[i];

    for (pos = 0; pos < msg.length; pos += 16) {
      n = Math.min(16, msg.length - pos);
      for (i = 0; i < 17; i++) block[i] = 0;
      for (i = 0; i < n; i++) block[i] = msg[pos + i];
      block[n] = 1;
      var m = limbs13(block);
      for (i = 0; i < 10; i++) h[i] += m[i];
      for (i = 0; i < 10; i++) {
        d[i] = 0;
        for (j = 0; j < 10; j++) d[i] += h[j] * (j <= i ? r[i - j] : r5[i + 10 - j]);
      }
      for (i = 0; i < 10; i++) h[i] = d[i];
      polyCarry(h);
    }

    // h is now below 2^130 < 2p, so one conditional subtraction of p
    // (add 5, look for a carry out of bit 130) makes it canonical.
    var g = new Float64Array(10), c = 5;
    for (i = 0; i < 10; i++) {
      g[i] = h[i] + c;
      c = g[i] >>> 13;
      g[i] &= 0x1fff;
    }
    var useG = c; // 1 when h + 5 >= 2^130, that is h >= p
    var mask = -useG;
    for (i = 0; i < 10; i++) h[i] = (h[i] & ~mask) | (g[i] & mask);

    // tag = (h + s) mod 2^128, little-endian.
    var tag = new Uint8Array(16), acc = 0, bits = 0, k = 0, sum, carryByte = 0;
    for (i = 0; i < 10 && k < 16; i++) {
      acc |= h[i] << bits;
      bits += 13;
      while (bits >= 8 && k < 16) {
        sum = (acc & 0xff) + key[16 + k] + carryByte;
        tag[k++] = sum & 0xff;
        carryByte = sum >>> 8;
        acc >>>= 8;
        bits -= 8;
      }
    }
    return tag;
  }

  // ---- ChaCha20-Poly1305 AEAD (RFC 8439 §2.8) ----------------------------

  function le64(n) {
    var b = new Uint8Array(8);
    store32(b, 0, n >>> 0);
    store32(b, 4, Math.floor(n / 4294967296) >>> 0);
    return b;
  }

  function macData(aad, ct) {
    var pad = function (n) { return (16 - (n % 16)) % 16; };
    var total = aad.length + pad(aad.length) + ct.length + pad(ct.length) + 16;
    var out = new Uint8Array(total), p = 0;
    out.set(aad, p); p += aad.length + pad(aad.length);
    out.set(ct, p); p += ct.length + pad(ct.length);
    out.set(le64(aad.length), p); p += 8;
    out.set(le64(ct.length), p);
    return out;
  }

  function polyKey(key, nonce) {
    return chacha20(key, 0, nonce, new Uint8Array(32));
  }

  // aeadSeal returns ciphertext || 16-byte tag.
  function aeadSeal(key, nonce, plaintext, aad) {
    var otk = polyKey(key, nonce);
    var ct = chacha20(key, 1, nonce, plaintext);
    var tag = poly1305(otk, macData(aad, ct));
    wipe(otk);
    var out = new Uint8Array(ct.length + 16);
    out.set(ct, 0);
    out.set(tag, ct.length);
    return out;
  }

  // aeadOpen returns the plaintext, or null when the tag does not match.
  function aeadOpen(key, nonce, box, aad) {
    if (box.length < 16) return null;
    var ct = box.subarray(0, box.length - 16), otk = polyKey(key, nonce);
    var tag = poly1305(otk, macData(aad, ct)), diff = 0, i;
    wipe(otk);
    for (i = 0; i < 16; i++) diff |= tag[i] ^ box[ct.length + i];
    if (diff !== 0) return null;
    return chacha20(key, 1, nonce, ct);
  }

  // ---- encodings ----------------------------------------------------------

  function utf8(s) {
    // TextEncoder is missing on the oldest phones this page must serve.
    var bin = unescape(encodeURIComponent(s)), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function toHex(b) {
    var s = '';
    for (var i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
    return s;
  }

  function fromHex(s) {
    if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new Error('bad hex');
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
    return out;
  }

  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  // toBase64url writes RFC 4648 §5 base64url without padding, the form the
  // kiosk decodes.
  function toBase64url(b) {
    var s = '', i, v;
    for (i = 0; i + 2 < b.length; i += 3) {
      v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      s += B64.charAt(v >>> 18) + B64.charAt((v >>> 12) & 63) +
        B64.charAt((v >>> 6) & 63) + B64.charAt(v & 63);
    }
    if (b.length - i === 1) {
      v = b[i] << 16;
      s += B64.charAt(v >>> 18) + B64.charAt((v >>> 12) & 63);
    } else if (b.length - i === 2) {
      v = (b[i] << 16) | (b[i + 1] << 8);
      s += B64.charAt(v >>> 18) + B64.charAt((v >>> 12) & 63) + B64.charAt((v >>> 6) & 63);
    }
    return s;
  }

  function fromBase64url(s) {
    if (s.length % 4 === 1) throw new Error('bad base64url');
    var out = new Uint8Array(Math.floor(s.length * 3 / 4)), acc = 0, bits = 0,
      k = 0, i, v;
    for (i = 0; i < s.length; i++) {
      v = B64.indexOf(s.charAt(i));
      if (v < 0) throw new Error('bad base64url');
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[k++] = (acc >>> bits) & 0xff;
      }
    }
    return out;
  }

  // ---- randomness and hygiene ---------------------------------------------

  function randomBytes(n) {
    var c = global.crypto || global.msCrypto;
    if (!c || typeof c.getRandomValues !== 'function') {
      // Math.random would make keys an onlooker could guess; refusing lets
      // the page fall back to an unsealed slip knowingly.
      throw new Error('seal: crypto.getRandomValues is not available');
    }
    var b = new Uint8Array(n);
    c.getRandomValues(b);
    return b;
  }

  function wipe(b) {
    for (var i = 0; i < b.length; i++) b[i] = 0;
  }

  function isZero(b) {
    var acc = 0;
    for (var i = 0; i < b.length; i++) acc |= b[i];
    return acc === 0;
  }

  function bytesOf(v, n, what) {
    var b = typeof v === 'string' ? fromBase64url(v) : v;
    if (!b || b.length !== n) throw new Error('seal: ' + what + ' must be ' + n + ' bytes');
    return b;
  }

  // ---- the seal -----------------------------------------------------------

  // sealContext is what binds a frame to its connection and place in it:
  // the kiosk's challenge (16 bytes, or base64url) and the frame's seq.
  function sealContext(challenge, seq) {
    var c = bytesOf(challenge, 16, 'challenge'), out = new Uint8Array(20);
    out.set(c, 0);
    store32be(out, 16, seq);
    return out;
  }

  function store32be(b, off, n) {
    b[off] = (n >>> 24) & 0xff;
    b[off + 1] = (n >>> 16) & 0xff;
    b[off + 2] = (n >>> 8) & 0xff;
    b[off + 3] = n & 0xff;
  }

  // sealWith is seal with the ephemeral secret and nonce supplied, so tests
  // can pin them; pages call sealFrame. context (optional) is sealContext's
  // result. Besides the three wire fields it returns, under names starting
  // with "_", the key and AAD that open the kiosk's answer.
  function sealWith(kioskPublicKey, plaintext, ephemeralSecret, nonce, context) {
    var kpub = bytesOf(kioskPublicKey, 32, 'kiosk public key');
    var msg = typeof plaintext === 'string' ? utf8(plaintext) : plaintext;
    var size = msg.length <= PADDED_LENGTH ? PADDED_LENGTH : LONG_LENGTH;
    if (msg.length > size) {
      throw new Error('seal: message longer than ' + LONG_LENGTH + ' bytes');
    }
    var padded = new Uint8Array(size), i;
    for (i = 0; i < size; i++) padded[i] = 0x20;
    padded.set(msg, 0);

    var epk = x25519Base(ephemeralSecret);
    var shared = x25519(ephemeralSecret, kpub);
    if (isZero(shared)) {
      // A low-order "public key" would make the key known to everyone.
      throw new Error('seal: kiosk public key is not usable');
    }
    var key = hchacha20(shared, new Uint8Array(16));
    var reply = hchacha20(shared, new Uint8Array(REPLY_INFO));
    var ctx = context || new Uint8Array(0);
    var aad = new Uint8Array(64 + ctx.length);
    aad.set(epk, 0);
    aad.set(kpub, 32);
    aad.set(ctx, 64);
    var box = aeadSeal(key, nonce, padded, aad);
    wipe(shared);
    wipe(key);
    wipe(padded);
    return { epk: toBase64url(epk), nonce: toBase64url(nonce), box: toBase64url(box), _reply: reply, _aad: aad };
  }

  // seal encrypts plaintext (a string of at most 256 UTF-8 bytes) to the
  // kiosk's public key (32 bytes, or base64url) and returns sealWith's
  // result.
  function seal(kioskPublicKey, plaintext, context) {
    var secret = randomBytes(32);
    try {
      return sealWith(kioskPublicKey, plaintext, secret, randomBytes(12), context);
    } finally {
      wipe(secret);
    }
  }

  // sealFrame seals message (an object, or JSON text) as frame seq of the
  // connection whose challenge the kiosk sent. It returns the frame's JSON
  // text and open, which returns the text of the kiosk's sealed answer to
  // this frame (given as the parsed object), or null if it does not open.
  function sealFrame(kioskPublicKey, message, challenge, seq) {
    var text = typeof message === 'string' ? message : JSON.stringify(message);
    var s = seal(kioskPublicKey, text, sealContext(challenge, seq));
    return {
      text: '{"type":"sealed","seq":' + seq + ',"epk":"' + s.epk + '","nonce":"' + s.nonce +
        '","box":"' + s.box + '"}',
      open: function (answer) { return openReply(s._reply, s._aad, answer); }
    };
  }

  // openReply opens the kiosk's answer {seq, nonce, box} with the key and
  // AAD of the frame it answers.
  function openReply(replyKey, aad, answer) {
    var nonce, box, msg, s = '', i;
    try {
      nonce = bytesOf(answer.nonce, 12, 'nonce');
      box = fromBase64url(answer.box);
    } catch (e) {
      return null;
    }
    if (box.length !== REPLY_LENGTH + 16) return null;
    msg = aeadOpen(replyKey, nonce, box, aad);
    if (msg === null) return null;
    for (i = 0; i < msg.length; i++) s += String.fromCharCode(msg[i]);
    try {
      s = decodeURIComponent(escape(s)); // UTF-8 bytes to a string, ES5-style
    } catch (e) {
      return null;
    }
    return s.replace(/ +$/, '');
  }

  // selfTest runs one known answer per primitive and returns true, or throws.
  // A page runs it once before sealing, because an old engine with broken
  // typed arrays would otherwise send boxes the kiosk can never open.
  function selfTest() {
    function expect(name, got, want) {
      if (toHex(got) !== want) throw new Error('seal self-test failed: ' + name);
    }
    // RFC 7748 §5.2, first vector.
    expect('x25519', x25519(
      fromHex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'),
      fromHex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')),
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
    // draft-irtf-cfrg-xchacha §2.2.1.
    expect('hchacha20', hchacha20(
      fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'),
      fromHex('000000090000004a0000000031415927')),
      '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
    // RFC 8439 §2.5.2.
    expect('poly1305', poly1305(
      fromHex('85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b'),
      utf8('Cryptographic Forum Research Group')),
      'a8061dc1305136c6c22b8baf0c0127a9');
    // RFC 8439 §2.8.2, the tag only: it depends on every byte of the
    // ciphertext, so it covers ChaCha20 too.
    var box = aeadSeal(
      fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
      fromHex('070000004041424344454647'),
      utf8("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."),
      fromHex('50515253c0c1c2c3c4c5c6c7'));
    expect('aead', box.subarray(box.length - 16), '1ae10b594f09e26a7e902ecbd0600691');
    if (typeof (global.crypto || global.msCrypto || {}).getRandomValues !== 'function') {
      throw new Error('seal self-test failed: no crypto.getRandomValues');
    }
    return true;
  }

  global.KioskSeal = {
    PADDED_LENGTH: PADDED_LENGTH,
    LONG_LENGTH: LONG_LENGTH,
    REPLY_LENGTH: REPLY_LENGTH,
    seal: seal,
    sealContext: sealContext,
    openReply: openReply,
    sealFrame: sealFrame,
    sealWith: sealWith,
    selfTest: selfTest,
    x25519: x25519,
    x25519Base: x25519Base,
    chacha20: chacha20,
    hchacha20: hchacha20,
    poly1305: poly1305,
    aeadSeal: aeadSeal,
    aeadOpen: aeadOpen,
    utf8: utf8,
    toHex: toHex,
    fromHex: fromHex,
    toBase64url: toBase64url,
    fromBase64url: fromBase64url
  };
})(typeof window !== 'undefined' ? window : this);

// Canonical msgpack, exactly as docs/protocol.md section 1 states it: the shortest form of
// every value (what msgpack-python's packb(value, use_bin_type=True) writes), map keys in
// ascending UTF-8 byte order, integers only. Byte strings are Bytes (msgpack bin); JS
// strings are msgpack str. Small enough to check against the spec by eye, which is why it
// is written here rather than vendored: a general msgpack library would not sort keys.

export class Bytes {
  constructor(u8) {
    this.u8 = u8;
  }
}
export const bin = (u8) => new Bytes(u8);
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

export class CodecError extends Error {}

export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function encode(value) {
  const out = [];
  write(out, value, 0);
  return Uint8Array.from(out);
}

function be(out, value, size) {
  let v = BigInt(value);
  const bytes = [];
  for (let i = 0; i < size; i++) {
    bytes.push(Number(v & 0xffn));
    v >>= 8n;
  }
  out.push(...bytes.reverse());
}

function writeInt(out, n) {
  const v = BigInt(n);
  if (v >= 0n) {
    if (v < 128n) out.push(Number(v));
    else if (v < 256n) {
      out.push(0xcc);
      be(out, v, 1);
    } else if (v < 65536n) {
      out.push(0xcd);
      be(out, v, 2);
    } else if (v < 4294967296n) {
      out.push(0xce);
      be(out, v, 4);
    } else if (v < 18446744073709551616n) {
      out.push(0xcf);
      be(out, v, 8);
    } else throw new CodecError("integer out of 64-bit range");
  } else {
    const twos = (size) => (1n << BigInt(8 * size)) + v;
    if (v >= -32n) out.push(Number(twos(1)));
    else if (v >= -128n) {
      out.push(0xd0);
      be(out, twos(1), 1);
    } else if (v >= -32768n) {
      out.push(0xd1);
      be(out, twos(2), 2);
    } else if (v >= -2147483648n) {
      out.push(0xd2);
      be(out, twos(4), 4);
    } else if (v >= -9223372036854775808n) {
      out.push(0xd3);
      be(out, twos(8), 8);
    } else throw new CodecError("integer out of 64-bit range");
  }
}

function writeLength(out, n, fix, fixMax, codes) {
  if (fix !== null && n <= fixMax) out.push(fix | n);
  else if (codes[0] !== null && n < 256) {
    out.push(codes[0]);
    be(out, n, 1);
  } else if (n < 65536) {
    out.push(codes[1]);
    be(out, n, 2);
  } else {
    out.push(codes[2]);
    be(out, n, 4);
  }
}

function write(out, value, depth) {
  if (depth > 32) throw new CodecError("value nested too deeply");
  if (value === null || value === undefined) out.push(0xc0);
  else if (value === false) out.push(0xc2);
  else if (value === true) out.push(0xc3);
  else if (typeof value === "bigint") writeInt(out, value);
  else if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new CodecError("floats are not canonical");
    writeInt(out, value);
  } else if (typeof value === "string") {
    const bytes = utf8.encode(value);
    writeLength(out, bytes.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
    for (const b of bytes) out.push(b);
  } else if (value instanceof Bytes) {
    writeLength(out, value.u8.length, null, -1, [0xc4, 0xc5, 0xc6]);
    for (const b of value.u8) out.push(b);
  } else if (Array.isArray(value)) {
    writeLength(out, value.length, 0x90, 15, [null, 0xdc, 0xdd]);
    for (const item of value) write(out, item, depth + 1);
  } else if (typeof value === "object") {
    const keys = Object.keys(value).map((k) => [utf8.encode(k), k]);
    keys.sort((a, b) => compareBytes(a[0], b[0]));
    writeLength(out, keys.length, 0x80, 15, [null, 0xde, 0xdf]);
    for (const [, key] of keys) {
      write(out, key, depth + 1);
      write(out, value[key], depth + 1);
    }
  } else throw new CodecError(`cannot encode ${typeof value}`);
}

// -- decoding (enough to read a transaction's bytes back) --------------------------------
export function decode(u8) {
  const reader = { u8, pos: 0 };
  const value = read(reader, 0);
  if (reader.pos !== u8.length) throw new CodecError("trailing bytes after the value");
  return value;
}

function take(r, n) {
  if (r.pos + n > r.u8.length) throw new CodecError("truncated msgpack");
  const part = r.u8.subarray(r.pos, r.pos + n);
  r.pos += n;
  return part;
}

function uint(r, n) {
  let v = 0n;
  for (const b of take(r, n)) v = (v << 8n) | BigInt(b);
  return v;
}

function small(v) {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}
function signed(v, n) {
  const top = 1n << BigInt(8 * n - 1);
  return v >= top ? v - (top << 1n) : v;
}

function read(r, depth) {
  if (depth > 32) throw new CodecError("value nested too deeply");
  const c = take(r, 1)[0];
  if (c < 0x80) return c;
  if (c >= 0xe0) return c - 256;
  if ((c & 0xf0) === 0x80) return readMap(r, c & 0x0f, depth);
  if ((c & 0xf0) === 0x90) return readArray(r, c & 0x0f, depth);
  if ((c & 0xe0) === 0xa0) return utf8Decoder.decode(take(r, c & 0x1f));
  switch (c) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return bin(take(r, Number(uint(r, 1 << (c - 0xc4)))));
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
      return small(uint(r, 1 << (c - 0xcc)));
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      const n = 1 << (c - 0xd0);
      return small(signed(uint(r, n), n));
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
      return utf8Decoder.decode(take(r, Number(uint(r, 1 << (c - 0xd9)))));
    case 0xdc:
    case 0xdd:
      return readArray(r, Number(uint(r, c === 0xdc ? 2 : 4)), depth);
    case 0xde:
    case 0xdf:
      return readMap(r, Number(uint(r, c === 0xde ? 2 : 4)), depth);
    default:
      throw new CodecError(`msgpack type 0x${c.toString(16)} is not canonical ipchain data`);
  }
}

function readArray(r, n, depth) {
  const items = [];
  for (let i = 0; i < n; i++) items.push(read(r, depth + 1));
  return items;
}

function readMap(r, n, depth) {
  const map = {};
  for (let i = 0; i < n; i++) {
    const key = read(r, depth + 1);
    if (typeof key !== "string") throw new CodecError("map keys must be strings");
    // defineProperty, not assignment: a key "__proto__" is data from the chain, and
    // `map[key] = v` would set the object's prototype instead of adding the key.
    Object.defineProperty(map, key, { value: read(r, depth + 1), enumerable: true,
                                      writable: true, configurable: true });
  }
  return map;
}

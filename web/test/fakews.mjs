// A scripted WebSocket server for the client's edge cases that a real engine
// does not produce on demand (gaps, duplicates, silence). Text frames only,
// small enough for tests: node:http + node:crypto, no dependencies.
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';

/**
 * Starts a server; onConnection(conn) is called for each upgrade, where conn
 * has frames (the parsed client frames so far), send(obj), close(code),
 * destroy() and next(pred) (resolves with the next frame matching pred).
 */
export async function fakeServer(onConnection = () => {}) {
  const conns = [];
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1')
      .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const conn = newConn(socket, req.url);
    conns.push(conn);
    onConnection(conn);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    conns,
    close() {
      for (const c of conns) c.destroy();
      server.close();
    },
  };
}

function newConn(socket, url) {
  let buf = Buffer.alloc(0);
  const waiters = [];
  const conn = {
    url,
    frames: [],
    closed: false,
    send(obj) {
      if (!conn.closed) socket.write(encode(0x1, Buffer.from(JSON.stringify(obj))));
    },
    close(code = 1000) {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(code);
      if (!conn.closed) socket.write(encode(0x8, b));
      conn.closed = true;
      socket.end();
    },
    destroy() {
      conn.closed = true;
      socket.destroy();
    },
    next(pred = () => true, timeout = 5000) {
      const seen = conn.frames.find((f) => !f._taken && pred(f));
      if (seen) {
        seen._taken = true;
        return Promise.resolve(seen);
      }
      return new Promise((res, rej) => {
        const w = { pred, res };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error('fake server: no matching frame within ' + timeout + ' ms'));
        }, timeout);
        waiters.push(w);
      });
    },
  };
  socket.on('error', () => {});
  socket.on('close', () => { conn.closed = true; });
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const r = decode(buf);
      if (!r) break;
      buf = buf.subarray(r.size);
      if (r.opcode === 0x8) {
        conn.close(1000);
        break;
      }
      if (r.opcode !== 0x1) continue;
      const f = JSON.parse(r.payload.toString('utf8'));
      Object.defineProperty(f, '_taken', { value: false, writable: true, enumerable: false });
      conn.frames.push(f);
      const i = waiters.findIndex((w) => w.pred(f));
      if (i >= 0) {
        const [w] = waiters.splice(i, 1);
        clearTimeout(w.timer);
        f._taken = true;
        w.res(f);
      }
    }
  });
  return conn;
}

function encode(opcode, payload) {
  const n = payload.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0x80 | opcode, n]);
  } else if (n < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

// decode parses one client frame (masked, unfragmented) from buf.
function decode(buf) {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const maskOff = off;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
  return { opcode, payload, size: off + len };
}

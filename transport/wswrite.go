package transport

import (
	"encoding/binary"
	"sync"
)

// Data frames are written without the library's writer: the writer
// encodes every frame it takes into one buffer and writes the buffer with
// one write to the network connection, where the library makes a write
// (a system call) of each frame. This is RFC 6455 framing as a server
// sends it: FIN and the opcode, the payload length in 7, 16 or 64 bits,
// no mask, the payload. It is only right as long as no extension is
// negotiated: permessage-deflate would need RSV1 and compressed payloads,
// so the upgrader never offers it (see Server.websocket).
//
// Control frames (ping, pong, close) still go through the library, from
// the same writer goroutine, so that the library knows when a close frame
// has been sent. Every write is whole frames in one call: the few control
// frames the library's reader writes by itself (a close reply, a 1002 or
// 1009 close) can come between two of the writer's writes, never inside
// a frame.

const (
	// maxHeader is the largest header of a server frame.
	maxHeader = 10
	// flushAt: frames are written once the buffer would grow past this.
	flushAt = 64 << 10
	// maxBatchedFrame: a larger payload is written alone (writeLarge).
	maxBatchedFrame = flushAt - maxHeader
	// writeBufSize is the size of a pooled buffer; one grows up to
	// flushAt while a writer holds it.
	writeBufSize = 4 << 10
)

// writeBufs holds the writers' buffers between runs: a connection holds
// one only while its writer runs.
var writeBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBufSize)
	return &b
}}

// frameWriter encodes frames into a pooled buffer.
type frameWriter struct {
	buf    *[]byte // nil until the first frame
	frames int     // frames in the buffer
}

func (fw *frameWriter) len() int {
	if fw.buf == nil {
		return 0
	}
	return len(*fw.buf)
}

// frame appends one final, unmasked frame of type typ (an opcode:
// websocket.TextMessage or BinaryMessage) holding data.
func (fw *frameWriter) frame(typ int, data []byte) {
	if fw.buf == nil {
		fw.buf = writeBufs.Get().(*[]byte)
	}
	*fw.buf = appendFrame(*fw.buf, typ, data)
	fw.frames++
}

// take returns the encoded frames and empties the buffer; the bytes are
// valid until the next frame.
func (fw *frameWriter) take() []byte {
	b := *fw.buf
	*fw.buf = b[:0]
	fw.frames = 0
	return b
}

// release gives the buffer back to the pool.
func (fw *frameWriter) release() {
	if fw.buf == nil {
		return
	}
	if cap(*fw.buf) <= flushAt+maxHeader {
		*fw.buf = (*fw.buf)[:0]
		writeBufs.Put(fw.buf)
	}
	fw.buf, fw.frames = nil, 0
}

// appendFrame appends a final, unmasked frame of opcode typ holding data
// to b.
func appendFrame(b []byte, typ int, data []byte) []byte {
	const fin = 0x80
	n := len(data)
	switch {
	case n <= 125:
		b = append(b, fin|byte(typ), byte(n))
	case n <= 0xffff:
		b = append(b, fin|byte(typ), 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, fin|byte(typ), 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, data...)
}

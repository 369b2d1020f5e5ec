package transport

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fws "github.com/gofiber/contrib/websocket"

	"github.com/coder/websocket"
)

// The writer's own framing, read by another implementation: a server that
// answers the handshake by hand and writes frames made by appendFrame,
// several to a write and of every length encoding (7, 16 and 64 bits, at
// their edges), then a close frame; coder/websocket must read them all.
func TestAppendFrameIsReadByAClient(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000, 1 << 20}
	payload := func(i, n int) []byte {
		return bytes.Repeat([]byte{byte('a' + i)}, n)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(h[:]))
		if err := brw.Flush(); err != nil {
			t.Error(err)
			return
		}
		var buf []byte
		for i, n := range sizes {
			typ := fws.TextMessage
			if i%2 == 1 {
				typ = fws.BinaryMessage
			}
			buf = appendFrame(buf, typ, payload(i, n))
			if i%3 == 2 { // three frames to a write
				if _, err := nc.Write(buf); err != nil {
					t.Error(err)
					return
				}
				buf = buf[:0]
			}
		}
		buf = append(buf, 0x88, 2, 0x03, 0xe8) // close 1000
		if _, err := nc.Write(buf); err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.ReadByte() // until the client's close reply or EOF
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(2 << 20)
	for i, n := range sizes {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, n, err)
		}
		want := websocket.MessageText
		if i%2 == 1 {
			want = websocket.MessageBinary
		}
		if typ != want || !bytes.Equal(got, payload(i, n)) {
			t.Fatalf("frame %d: got %v of %d bytes, want %v of %d", i, typ, len(got), want, n)
		}
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after the frames: %v, want close 1000", err)
	}
}

func TestFrameWriterReleasesItsBuffer(t *testing.T) {
	var fw frameWriter
	fw.frame(fws.TextMessage, []byte("hi"))
	fw.frame(fws.TextMessage, []byte("ho"))
	if fw.frames != 2 || string(fw.take()) != "\x81\x02hi\x81\x02ho" || fw.len() != 0 {
		t.Fatal("two frames are not one buffer")
	}
	fw.release()
	if fw.buf != nil {
		t.Fatal("release kept the buffer")
	}
	fw.release() // a second release is a no-op
}

package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The lingering close. A client sending a body the gateway refuses (here
// 413: chunked, so the size is known only once 64 KiB have arrived) keeps
// sending after the answer. Closing a socket with unread bytes in it sends
// RST: the client's write fails with "connection reset by peer", and an
// HTTP client that is still writing its body reports that error instead of
// the 413 ("status 0" in TestSpoolLimits on a loaded machine). The gateway
// half-closes and drains instead, so the client finishes and reads the
// answer.

// refusedBody is 16 MiB of chunked upload, far over max_body_bytes (64 KiB)
// and over what the socket buffers absorb.
const refusedBody = 16 << 20

func TestRefusedUploadIsNotReset(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, hostileConfig(be.Addr()))
	t.Run("raw", func(t *testing.T) {
		c, err := net.Dial("tcp", g.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		bw := bufio.NewWriterSize(c, 64<<10)
		fmt.Fprintf(bw, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := strings.Repeat("x", 16<<10)
		for range refusedBody / len(chunk) {
			fmt.Fprintf(bw, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		bw.WriteString("0\r\n\r\n")
		if err := bw.Flush(); err != nil {
			t.Errorf("writing the body: %v; want it drained, not reset", err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 413 ") {
			t.Fatalf("read %q, %v; want the 413 status line", line, err)
		}
	})
	t.Run("net/http", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		for i := range 3 {
			body := io.LimitReader(zeros{}, refusedBody) // no length: sent chunked
			resp, err := client.Post(g.URL+"/upload", "application/octet-stream", body)
			if err != nil {
				t.Fatalf("upload %d: %v; want a 413 answer", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("upload %d: status %d, want 413", i, resp.StatusCode)
			}
		}
	})
	if n := be.Count(); n != 0 {
		t.Fatalf("backend saw %d requests, want 0", n)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

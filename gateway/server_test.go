package gateway

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"shardgate/listener"
)

// The first leanAbove connections are served by the fast server (buffers
// kept); beyond that, new ones go to the lean server (no buffers while idle),
// and both answer.
func TestServerSplitsByOpenConnections(t *testing.T) {
	g, cfg := newTestGateway(t, oneUpstream(startSmallBackend(t), 0, ""))
	grp, err := listener.Listen("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(g, cfg.Server, slog.New(slog.DiscardHandler))
	s.Serve([]*listener.Group{grp})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		g.Close()
	})
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range leanAbove + 20 {
		c, err := net.Dial("tcp", grp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v, %v; want 200", i, resp, err)
		}
		resp.Body.Close()
	}
	fast, lean := s.fast.GetOpenConnectionsCount(), s.lean.GetOpenConnectionsCount()
	if fast < leanAbove-1 || fast > leanAbove+1 || lean < 18 {
		t.Fatalf("open connections: fast %d, lean %d; want about %d and 20", fast, lean, leanAbove)
	}
}

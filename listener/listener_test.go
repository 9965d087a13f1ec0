package listener

import (
	"errors"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestTCPNetwork(t *testing.T) {
	tests := []struct {
		address string
		want    string
	}{
		{":8080", "tcp"},
		{"localhost:8080", "tcp"},
		{"127.0.0.1:8080", "tcp4"},
		{"0.0.0.0:8080", "tcp4"},
		{"[::ffff:127.0.0.1]:8080", "tcp4"},
		{"[::1]:8080", "tcp6"},
		{"[::]:8080", "tcp6"},
		{"[fe80::1%eth0]:8080", "tcp6"},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			got, err := tcpNetwork(tt.address)
			if err != nil || got != tt.want {
				t.Errorf("tcpNetwork(%q) = %q, %v, want %q, nil", tt.address, got, err, tt.want)
			}
		})
	}
}

func TestListenSpreadsConnectionsOverShards(t *testing.T) {
	const shards, n = 4, 200
	g := listenT(t, "127.0.0.1:0", shards)
	conns := acceptAll(t, g)
	for range n {
		dial(t, g.Addr())
	}
	accepted := collect(t, conns, n)
	defer closeAll(accepted)

	var sum uint64
	busy := 0
	for i := range shards {
		sum += g.Accepted(i)
		if g.Accepted(i) > 0 {
			busy++
		}
	}
	if sum != n {
		t.Errorf("sum of Accepted(i) = %d, want %d", sum, n)
	}
	if busy < 2 {
		t.Errorf("shards that accepted = %d, want at least 2 (per shard: %v)", busy, perShard(g))
	}
	byShard := make([]uint64, shards)
	for _, c := range accepted {
		byShard[c.Shard()]++
	}
	for i := range shards {
		if byShard[i] != g.Accepted(i) {
			t.Errorf("conns with Shard() == %d: %d, want Accepted(%d) = %d", i, byShard[i], i, g.Accepted(i))
		}
	}
	if got := g.Open(); got != n {
		t.Errorf("Open() = %d with %d accepted conns, want %d", got, n, n)
	}
	closeAll(accepted)
	if got := g.Open(); got != 0 {
		t.Errorf("Open() = %d after closing every conn, want 0", got)
	}
	closeAll(accepted) // a second Close must not count again
	if got := g.Open(); got != 0 {
		t.Errorf("Open() = %d after closing every conn twice, want 0", got)
	}
}

func perShard(g *Group) []uint64 {
	counts := make([]uint64, len(g.Shards()))
	for i := range counts {
		counts[i] = g.Accepted(i)
	}
	return counts
}

func TestListenPortZeroSharesRealPort(t *testing.T) {
	tests := []struct {
		address string
		ipv6    bool
	}{
		{"127.0.0.1:0", false},
		{"[::1]:0", true},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			if tt.ipv6 && !ipv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			g := listenT(t, tt.address, 3)
			addr := g.Addr().(*net.TCPAddr)
			if addr.Port == 0 {
				t.Fatalf("Addr() = %s, want a real port", addr)
			}
			if is6 := addr.IP.To4() == nil; is6 != tt.ipv6 {
				t.Errorf("Addr() = %s, want IPv6 %v", addr, tt.ipv6)
			}
			if got := g.Address(); got != tt.address {
				t.Errorf("Address() = %q, want %q", got, tt.address)
			}
			for i, ln := range g.Shards() {
				if got := ln.Addr().String(); got != addr.String() {
					t.Errorf("Shards()[%d].Addr() = %s, want %s", i, got, addr)
				}
			}
		})
	}
}

func TestListenDefaultShards(t *testing.T) {
	for _, shards := range []int{0, -1} {
		g := listenT(t, "127.0.0.1:0", shards)
		if got, want := len(g.Shards()), runtime.GOMAXPROCS(0); got != want {
			t.Errorf("len(Listen(_, %d).Shards()) = %d, want GOMAXPROCS = %d", shards, got, want)
		}
	}
}

func TestListenBindFailureLeaksNothing(t *testing.T) {
	t.Run("address held without SO_REUSEPORT", func(t *testing.T) {
		plain, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("net.Listen error = %v", err)
		}
		defer plain.Close()
		before := openFDs(t)
		g, err := Listen(plain.Addr().String(), 4)
		if !errors.Is(err, syscall.EADDRINUSE) || g != nil {
			t.Fatalf("Listen(held address) = %v, %v, want nil, EADDRINUSE", g, err)
		}
		if want := "listening on " + plain.Addr().String() + ": "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Listen(held address) error = %q, want prefix %q", err, want)
		}
		if after := openFDs(t); after != before {
			t.Errorf("open descriptors = %d after failed Listen, want %d", after, before)
		}
	})
	t.Run("third shard fails", func(t *testing.T) {
		injected := errors.New("injected bind failure")
		var bound []*net.TCPListener
		bind := func(network, address string) (*net.TCPListener, error) {
			if len(bound) == 2 {
				return nil, injected
			}
			ln, err := bindReusePort(network, address)
			if err == nil {
				bound = append(bound, ln)
			}
			return ln, err
		}
		before := openFDs(t)
		g, err := listen("127.0.0.1:0", 4, bind)
		if !errors.Is(err, injected) || g != nil {
			t.Fatalf("listen(_, 4, failing third bind) = %v, %v, want nil, %v", g, err, injected)
		}
		if after := openFDs(t); after != before {
			t.Errorf("open descriptors = %d after failed listen, want %d", after, before)
		}
		// The port is free again: a socket without SO_REUSEPORT can take it.
		plain, err := net.Listen("tcp4", bound[0].Addr().String())
		if err != nil {
			t.Fatalf("net.Listen(%s) after failed listen error = %v, want the shards closed", bound[0].Addr(), err)
		}
		plain.Close()
	})
	t.Run("malformed address", func(t *testing.T) {
		if g, err := Listen("no-port", 2); err == nil {
			g.Close()
			t.Errorf("Listen(%q) error = nil, want one", "no-port")
		}
	})
}

func TestCloseStopsEveryShard(t *testing.T) {
	g := listenT(t, "127.0.0.1:0", 3)
	if err := g.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	for i, ln := range g.Shards() {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Shards()[%d].Accept() after Close error = %v, want net.ErrClosed", i, err)
		}
	}
	if c, err := net.Dial("tcp", g.Addr().String()); err == nil {
		c.Close()
		t.Errorf("Dial(%s) after Close succeeded, want connection refused", g.Addr())
	}
}

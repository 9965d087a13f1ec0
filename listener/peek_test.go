package listener

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// pair returns an accepted *Conn and the client end of the same connection.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	g := listenT(t, "127.0.0.1:0", 1)
	conns := acceptAll(t, g)
	client := dial(t, g.Addr())
	c := collect(t, conns, 1)[0]
	t.Cleanup(func() { c.Close() })
	return c, client
}

// peekSide is one way to peek at one end of a connection.
type peekSide struct {
	name string
	// open returns the end to peek at, its peer, and the peek under test.
	open func(t *testing.T) (local, peer *net.TCPConn, peek func() State)
}

var peekSides = []peekSide{
	{"Conn.Peek on accepted conn", func(t *testing.T) (*net.TCPConn, *net.TCPConn, func() State) {
		c, client := pair(t)
		return c.TCPConn, client, c.Peek
	}},
	{"Peek on accepted *Conn", func(t *testing.T) (*net.TCPConn, *net.TCPConn, func() State) {
		c, client := pair(t)
		return c.TCPConn, client, func() State { return Peek(c) }
	}},
	{"Peeker on dialed conn", func(t *testing.T) (*net.TCPConn, *net.TCPConn, func() State) {
		c, client := pair(t)
		p, err := NewPeeker(client)
		if err != nil {
			t.Fatalf("NewPeeker() error = %v", err)
		}
		return client, c.TCPConn, p.Peek
	}},
	{"Peek on *net.TCPConn", func(t *testing.T) (*net.TCPConn, *net.TCPConn, func() State) {
		c, client := pair(t)
		return client, c.TCPConn, func() State { return Peek(client) }
	}},
}

func waitState(t *testing.T, peek func() State, want State) {
	t.Helper()
	var got State
	wait.For(t, "Peek() = "+want.String(), func() bool {
		got = peek()
		return got == want
	})
}

func TestPeekSeesIdleDataAndClose(t *testing.T) {
	closings := []struct {
		name  string
		close func(*net.TCPConn) error
	}{
		{"peer closes", (*net.TCPConn).Close},
		{"peer half-closes", (*net.TCPConn).CloseWrite},
		{"peer resets", func(c *net.TCPConn) error {
			if err := c.SetLinger(0); err != nil {
				return err
			}
			return c.Close()
		}},
	}
	for _, side := range peekSides {
		for _, closing := range closings {
			t.Run(side.name+"/"+closing.name, func(t *testing.T) {
				local, peer, peek := side.open(t)
				if got := peek(); got != StateIdle {
					t.Fatalf("Peek() with an idle peer = %v, want %v", got, StateIdle)
				}
				if _, err := peer.Write([]byte("x")); err != nil {
					t.Fatalf("peer Write error = %v", err)
				}
				waitState(t, peek, StateData)
				if got := peek(); got != StateData {
					t.Errorf("second Peek() = %v, want %v", got, StateData)
				}
				var b [1]byte
				if _, err := io.ReadFull(local, b[:]); err != nil || b[0] != 'x' {
					t.Fatalf("Read after Peek = %q, %v, want \"x\", nil (Peek must not consume)", b[:], err)
				}
				if got := peek(); got != StateIdle {
					t.Errorf("Peek() after reading everything = %v, want %v", got, StateIdle)
				}
				if err := closing.close(peer); err != nil {
					t.Fatalf("closing peer: %v", err)
				}
				waitState(t, peek, StateClosed)
			})
		}
	}
}

// Regression: RawConn.Read refuses to call its func once a read deadline has
// passed, which made an idle client look gone while its request waited.
func TestPeekIgnoresPastReadDeadline(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := c.Peek(); got != StateIdle {
		t.Errorf("Peek() with a past read deadline = %v, want %v", got, StateIdle)
	}
}

// Regression: RawConn.Read waits for the read lock, so Peek blocked for as
// long as another goroutine sat in conn.Read.
func TestPeekDoesNotWaitForBlockedRead(t *testing.T) {
	c, client := pair(t)
	readDone := make(chan error, 1)
	go func() { readDone <- blockedRead(c) }()
	t.Cleanup(func() {
		client.Write([]byte("x")) // release the reader
		<-readDone
	})
	wait.For(t, "the reader to block in Read", func() bool { return ioWaiting("blockedRead") })
	peeked := make(chan State, 1)
	go func() { peeked <- c.Peek() }()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	select {
	case got := <-peeked:
		if got != StateIdle {
			t.Errorf("Peek() during a blocked Read = %v, want %v", got, StateIdle)
		}
	case <-timeout.C:
		t.Fatal("Peek() blocked behind a concurrent Read")
	}
}

//go:noinline
func blockedRead(c *Conn) error {
	var b [1]byte
	_, err := c.Read(b[:])
	return err
}

// ioWaiting reports whether a goroutine running fn is parked waiting for I/O.
func ioWaiting(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[IO wait") && strings.Contains(g, "listener."+fn+"(") {
			return true
		}
	}
	return false
}

func TestPeekAfterLocalClose(t *testing.T) {
	c, client := pair(t)
	p, err := NewPeeker(client)
	if err != nil {
		t.Fatalf("NewPeeker() error = %v", err)
	}
	c.Close()
	client.Close()
	if got := c.Peek(); got != StateClosed {
		t.Errorf("Conn.Peek() after Close = %v, want %v", got, StateClosed)
	}
	if got := p.Peek(); got != StateClosed {
		t.Errorf("Peeker.Peek() after Close = %v, want %v", got, StateClosed)
	}
}

func TestPeekAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c, client := pair(t)
	p, err := NewPeeker(client)
	if err != nil {
		t.Fatalf("NewPeeker() error = %v", err)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitState(t, c.Peek, StateData)
	tests := []struct {
		name string
		peek func() State
		max  float64
	}{
		{"Conn.Peek", c.Peek, 0},
		{"Peek(*Conn)", func() State { return Peek(c) }, 0},
		{"Peeker.Peek", p.Peek, 0},
		// SyscallConn allocates its RawConn; nothing else does.
		{"Peek(*net.TCPConn)", func() State { return Peek(client) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testing.AllocsPerRun(1000, func() { tt.peek() })
			t.Logf("%s: %v allocs per call", tt.name, got)
			if got > tt.max {
				t.Errorf("%s allocs per call = %v, want <= %v", tt.name, got, tt.max)
			}
		})
	}
}

func BenchmarkPeek(b *testing.B) {
	g, err := Listen("127.0.0.1:0", 1)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	client, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	nc, err := g.Shards()[0].Accept()
	if err != nil {
		b.Fatal(err)
	}
	c := nc.(*Conn)
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if c.Peek() != StateIdle {
			b.Fatal("Peek() != idle")
		}
	}
}

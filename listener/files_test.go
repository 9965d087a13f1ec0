package listener

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesHandoffKeepsQueuedConnections is the point of fd handoff:
// connections waiting in the accept queues when the old Group closes are
// accepted by the Group rebuilt from its files, not reset.
func TestFilesHandoffKeepsQueuedConnections(t *testing.T) {
	const shards, queued = 4, 40
	old := listenT(t, "127.0.0.1:0", shards)
	files, err := old.Files()
	if err != nil {
		t.Fatalf("Files() error = %v", err)
	}
	if len(files) != shards {
		t.Fatalf("len(Files()) = %d, want %d", len(files), shards)
	}
	clients := make(map[string]*net.TCPConn, queued)
	for range queued { // nobody accepts: they wait in the shards' queues
		c := dial(t, old.Addr())
		clients[c.LocalAddr().String()] = c
	}
	if err := old.Close(); err != nil {
		t.Fatalf("old Close() error = %v", err)
	}

	rebuilt, err := FromFiles(old.Address(), files)
	if err != nil {
		t.Fatalf("FromFiles() error = %v", err)
	}
	t.Cleanup(func() { rebuilt.Close() })
	if got, want := rebuilt.Addr().String(), old.Addr().String(); got != want {
		t.Errorf("rebuilt Addr() = %s, want %s", got, want)
	}
	if got := len(rebuilt.Shards()); got != shards {
		t.Errorf("len(rebuilt Shards()) = %d, want %d", got, shards)
	}
	accepted := collect(t, acceptAll(t, rebuilt), queued)
	defer closeAll(accepted)
	for _, c := range accepted {
		client, ok := clients[c.RemoteAddr().String()]
		if !ok {
			t.Fatalf("accepted a connection from %s, not one of the queued clients", c.RemoteAddr())
		}
		assertCarries(t, client, c)
	}
	if got := rebuilt.Open(); got != queued {
		t.Errorf("rebuilt Open() = %d, want %d", got, queued)
	}
	for i, f := range files {
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("files[%d].Close() after FromFiles = %v, want os.ErrClosed (FromFiles owns them)", i, err)
		}
	}
}

// assertCarries checks that bytes written by client arrive on server.
func assertCarries(t *testing.T, client net.Conn, server net.Conn) {
	t.Helper()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatalf("client Write error = %v", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(server, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("server Read = %q, %v, want \"x\", nil", b[:], err)
	}
}

func TestFilesLeaveGroupAccepting(t *testing.T) {
	g := listenT(t, "127.0.0.1:0", 2)
	files, err := g.Files()
	if err != nil {
		t.Fatalf("Files() error = %v", err)
	}
	closeFiles(files)
	conns := acceptAll(t, g)
	client := dial(t, g.Addr())
	c := collect(t, conns, 1)[0]
	defer c.Close()
	assertCarries(t, client, c)
}

func TestFromFilesRejects(t *testing.T) {
	tests := []struct {
		name  string
		files func(t *testing.T) []*os.File
		want  error
	}{
		{"no files", func(*testing.T) []*os.File { return nil }, ErrNoFiles},
		{"regular file", func(t *testing.T) []*os.File {
			f, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
			if err != nil {
				t.Fatal(err)
			}
			return []*os.File{f}
		}, ErrNotListener},
		{"connected socket", func(t *testing.T) []*os.File {
			g := listenT(t, "127.0.0.1:0", 1)
			return []*os.File{fileOf(t, dial(t, g.Addr()))}
		}, ErrNotListener},
		{"UDP socket", func(t *testing.T) []*os.File {
			u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			return []*os.File{fileOf(t, u)}
		}, ErrNotListener},
		{"listener then regular file", func(t *testing.T) []*os.File {
			g := listenT(t, "127.0.0.1:0", 1)
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			return append(groupFiles(t, g), f)
		}, ErrNotListener},
		{"two addresses", func(t *testing.T) []*os.File {
			a, b := listenT(t, "127.0.0.1:0", 1), listenT(t, "127.0.0.1:0", 1)
			return append(groupFiles(t, a), groupFiles(t, b)...)
		}, ErrAddrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tt.files(t)
			before := openFDs(t)
			g, err := FromFiles("127.0.0.1:8080", files)
			if !errors.Is(err, tt.want) || g != nil {
				t.Fatalf("FromFiles() = %v, %v, want nil, %v", g, err, tt.want)
			}
			if after, want := openFDs(t), before-len(files); after != want {
				t.Errorf("open descriptors = %d after failed FromFiles, want %d (its files closed, nothing leaked)", after, want)
			}
		})
	}
}

func fileOf(t *testing.T, c interface{ File() (*os.File, error) }) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatalf("File() error = %v", err)
	}
	return f
}

func groupFiles(t *testing.T, g *Group) []*os.File {
	t.Helper()
	files, err := g.Files()
	if err != nil {
		t.Fatalf("Files() error = %v", err)
	}
	return files
}

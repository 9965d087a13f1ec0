package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// resumes makes one request over a new TLS connection with the client's
// session cache and reports whether the handshake resumed a session.
func resumes(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tlsDial(addr, "a.test", cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	// TLS 1.3 tickets arrive after the handshake: read a response so the
	// client stores the one for the next connection.
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	resp.Body.Close()
	return c.ConnectionState().DidResume
}

// TestTLSSessionsResumeAcrossUpgrade: session tickets issued before a binary
// upgrade (SIGUSR2) resume on the new process, which inherits the ticket key
// seed, so clients do not all pay a full handshake at once after a deploy.
func TestTLSSessionsResumeAcrossUpgrade(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	backend := NewRecorder(t, nil)
	s := newTLSSetup(t)
	g := StartGateway(t, s.config(backend.Addr(), "", "", ""))
	cfg := &tls.Config{RootCAs: s.ca.pool, ClientSessionCache: tls.NewLRUClientSessionCache(4)}

	if resumes(t, g.Addr, cfg) {
		t.Fatal("the first connection resumed a session it cannot have")
	}
	if !resumes(t, g.Addr, cfg) {
		t.Fatal("the second connection did not resume: session tickets are off")
	}

	upgrade(t, g, 15*time.Second)
	if !resumes(t, g.Addr, cfg) {
		t.Error("after the upgrade the session did not resume: the new process has other ticket keys")
	}
}

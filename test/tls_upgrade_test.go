package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
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

	g.Signal(t, syscall.SIGUSR2)
	g.WaitForLog(t, "upgrade: new process started", 10*time.Second)
	m := regexp.MustCompile(`new process started" pid=(\d+)`).FindStringSubmatch(g.Logs())
	if m == nil {
		t.Fatalf("no child pid in the logs:\n%s", g.Logs())
	}
	child, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		syscall.Kill(child, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(child, &ws, 0, nil)
	})
	if code, err := g.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("old process exit = %d, %v; want 0", code, err)
	}
	if !resumes(t, g.Addr, cfg) {
		t.Error("after the upgrade the session did not resume: the new process has other ticket keys")
	}
}

package test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"shardgate/internal/wait"
)

// adminGuardConfig puts the admin listener on 127.0.0.2 ("another host"
// for a client at 127.0.0.1) with the given extra admin keys; head comes
// first ("processes: 2\n").
func adminGuardConfig(head, backend, adminKeys string) string {
	return head + fmt.Sprintf(`
listen: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.2:0"%s}
upstreams:
  app: {backends: [{address: %q}]}
routes: [{host: "*", path_prefix: /, upstream: app}]
`, adminKeys, backend)
}

func adminGet(t *testing.T, c *http.Client, url string, header ...string) int {
	code, _, _ := getWith(t, c, url, header...)
	return code
}

// TestAdminGuardBearer: on a routable admin address, pprof is 404 unless
// enabled, clients outside admin.allow get 403, allowed ones 401 without
// the token and 200 with it; /metrics alone is open to metrics_allow; the
// refusals are counted; SIGHUP re-reads the token file. With processes: 2
// the supervisor's listener is guarded the same way (regression: it served
// everything to everyone, and the workers' private sockets were guarded
// instead).
func TestAdminGuardBearer(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("processes %d", n), func(t *testing.T) { testAdminGuardBearer(t, fmt.Sprintf("processes: %d\n", n)) })
	}
}

func testAdminGuardBearer(t *testing.T, head string) {
	backend := NewRecorder(t, nil)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("first-secret-token-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := StartGateway(t, adminGuardConfig(head, backend.Addr(), fmt.Sprintf(
		", allow: [127.0.0.3/32], metrics_allow: [127.0.0.4/32], auth: {bearer_token_file: %q}", token)))
	admin := g.AdminURL
	if !strings.HasPrefix(admin, "http://127.0.0.2:") {
		t.Fatalf("admin URL %q, want one on 127.0.0.2", admin)
	}
	allowed, outsider, scraper := clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.4")
	good := []string{"Authorization", "Bearer first-secret-token-0123"}

	for _, tt := range []struct {
		name   string
		c      *http.Client
		path   string
		header []string
		want   int
	}{
		{"outside allow, even loopback", outsider, "/metrics", good, 403},
		{"outside allow, status", outsider, "/status", good, 403},
		{"allowed without token", allowed, "/metrics", nil, 401},
		{"allowed with a wrong token", allowed, "/status", []string{"Authorization", "Bearer nope"}, 401},
		{"allowed with the token", allowed, "/metrics", good, 200},
		{"status with the token", allowed, "/status", good, 200},
		{"pprof is off by default", allowed, "/debug/pprof/", good, 404},
		{"healthz needs no token", allowed, "/healthz", nil, 200},
		{"metrics_allow may scrape", scraper, "/metrics", good, 200},
		{"metrics_allow still needs the token", scraper, "/metrics", nil, 401},
		{"metrics_allow may not read status", scraper, "/status", good, 403},
		{"metrics_allow may not profile", scraper, "/debug/pprof/", good, 403},
	} {
		if got := adminGet(t, tt.c, admin+tt.path, tt.header...); got != tt.want {
			t.Errorf("%s: GET %s = %d, want %d", tt.name, tt.path, got, tt.want)
		}
	}
	req, _ := http.NewRequest("GET", admin+"/metrics", nil)
	req.Header.Set("Authorization", good[1])
	resp, err := allowed.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := parseMetrics(t, string(body))
	for code, want := range map[string]float64{"403": 4, "401": 3} {
		if v, _ := m.value("shardgate_admin_refused_total", map[string]string{"code": code}); v != want {
			t.Errorf("shardgate_admin_refused_total{code=%q} = %v, want %v", code, v, want)
		}
	}

	// A new token on SIGHUP: the old one stops working.
	if err := os.WriteFile(token, []byte("second-secret-token-4567"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Signal(t, syscall.SIGHUP)
	g.WaitForLog(t, "reloaded", readyTimeout)
	wait.For(t, "the new token accepted", func() bool {
		return adminGet(t, allowed, admin+"/metrics", "Authorization", "Bearer second-secret-token-4567") == 200
	})
	if got := adminGet(t, allowed, admin+"/metrics", good...); got != 401 {
		t.Errorf("old token after SIGHUP: %d, want 401", got)
	}
}

// TestAdminGuardBasicTLSAndPprof: basic auth from an htpasswd file with a
// bcrypt hash, over admin.tls, with pprof enabled; with processes: 2 on
// the supervisor's listener (regression: the workers wrapped their private
// sockets in TLS, which the supervisor speaks plain HTTP to, so it never
// became ready).
func TestAdminGuardBasicTLSAndPprof(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("processes %d", n), func(t *testing.T) { testAdminGuardBasicTLSAndPprof(t, fmt.Sprintf("processes: %d\n", n)) })
	}
}

func testAdminGuardBasicTLSAndPprof(t *testing.T, head string) {
	backend := NewRecorder(t, nil)
	s := newTLSSetup(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	// htpasswd -B writes $2y$, which bcrypt reads as $2b$.
	line := "# admins\nprom:" + strings.Replace(string(hash), "$2a$", "$2y$", 1) + "\n"
	if err := os.WriteFile(htpasswd, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	g := StartGateway(t, adminGuardConfig(head, backend.Addr(), fmt.Sprintf(
		", allow: [127.0.0.1/32], pprof: true, auth: {basic_auth_file: %q}, tls: {certificates: [{cert: %q, key: %q}]}",
		htpasswd, s.aCert, s.aKey)))
	adminAddr := strings.TrimPrefix(g.AdminURL, "http://")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test"}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := "https://" + adminAddr
	for _, tt := range []struct {
		path       string
		user, pass string
		want       int
	}{
		{"/metrics", "", "", 401},
		{"/metrics", "prom", "wrong", 401},
		{"/metrics", "nobody", "s3cret", 401},
		{"/metrics", "prom", "s3cret", 200},
		{"/metrics", "prom", "s3cret", 200}, // remembered, no second bcrypt
		{"/debug/pprof/", "prom", "s3cret", 200},
		{"/debug/pprof/?worker=0", "prom", "s3cret", 200}, // processes: 2: worker 0's, through its socket
	} {
		req, _ := http.NewRequest("GET", url+tt.path, nil)
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s over TLS: %v", tt.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s as %q/%q = %d, want %d", tt.path, tt.user, tt.pass, resp.StatusCode, tt.want)
		}
		if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
	if code, _, body := getWith(t, http.DefaultClient, "http://"+adminAddr+"/healthz"); code != 400 {
		t.Errorf("plain HTTP to the TLS admin listener: %d %q, want 400", code, body)
	}
	if strings.Contains(g.Logs(), "handshake error") {
		t.Errorf("a failed admin handshake was logged; logs:\n%s", g.Logs())
	}
}

// TestCheckWarnsOpenAdmin: -check warns (and still exits 0) when the admin
// address is not loopback and neither allow nor auth is set.
func TestCheckWarnsOpenAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		admin string
		warn  bool
	}{
		{`{address: "0.0.0.0:9180"}`, true},
		{`{address: "127.0.0.1:9180"}`, false},
		{`{address: "0.0.0.0:9180", allow: [10.0.0.0/8]}`, false},
	} {
		path := filepath.Join(dir, "c.yaml")
		cfg := fmt.Sprintf("admin: %s\nupstreams: {app: {backends: [{address: \"127.0.0.1:1\"}]}}\nroutes: [{upstream: app}]\n", tt.admin)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binPath, "-check", "-config", path).CombinedOutput()
		if err != nil {
			t.Errorf("-check with admin %s: %v\n%s", tt.admin, err, out)
		}
		if got := strings.Contains(string(out), "warning: admin.address"); got != tt.warn {
			t.Errorf("-check with admin %s: warning %v, want %v; output:\n%s", tt.admin, got, tt.warn, out)
		}
	}
}

// TestWorkerAdminSocketAnswersSupervisorOnly: with processes: 2 a worker's
// private admin socket (abstract, so any local process can connect) has no
// guard of its own; it serves its supervisor alone, and closes anyone
// else's connection unanswered.
func TestWorkerAdminSocketAnswersSupervisorOnly(t *testing.T) {
	backend := NewRecorder(t, nil)
	g := StartGateway(t, adminGuardConfig("processes: 2\n", backend.Addr(), ""))
	c, err := net.Dial("unix", fmt.Sprintf("@shardgate-%d-worker-0", g.Pid()))
	if err != nil {
		t.Fatalf("dialing worker 0's admin socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /status?format=json HTTP/1.0\r\n\r\n")
	// Closed with the request unread: EOF or a reset, never an answer.
	if got, err := io.ReadAll(c); len(got) != 0 || os.IsTimeout(err) {
		t.Fatalf("a stranger on worker 0's admin socket got %q (%v), want the connection closed unanswered", got, err)
	}
	// The supervisor still reads its workers.
	if code, _, body := getWith(t, clientFrom(t, "127.0.0.1"), g.AdminURL+"/status?format=json"); code != 200 ||
		!strings.Contains(body, `"processes"`) {
		t.Fatalf("supervisor /status = %d %q", code, body)
	}
}

// Package test holds end-to-end tests: they build the shardgate binary once,
// start it as a real process against real backends and drive it with real
// clients (curl, net/http, raw TCP).
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binPath is the shardgate binary built by TestMain.
var binPath string

// loopbackListeners is the head of a test config: a 2-shard listener and the
// admin listener, both on free loopback ports.
const loopbackListeners = `listen:
  - address: "127.0.0.1:0"
    shards: 2
admin:
  address: "127.0.0.1:0"
`

// readyTimeout bounds how long StartGateway waits for the ready log line.
const readyTimeout = 15 * time.Second

// TestMain builds ../cmd/shardgate once into a temporary directory (with
// -race when SHARDGATE_RACE=1), runs the tests and removes the directory.
// SHARDGATE_BIN=/path/to/shardgate tests that binary instead of building one.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shardgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating build dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if prebuilt := os.Getenv("SHARDGATE_BIN"); prebuilt != "" {
		binPath = prebuilt
		return m.Run()
	}
	binPath = filepath.Join(dir, "shardgate")
	args := []string{"build", "-o", binPath}
	if os.Getenv("SHARDGATE_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "../cmd/shardgate")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

// Gateway is a running shardgate process started by a test. Its methods are
// safe for concurrent use.
type Gateway struct {
	Addr       string // "127.0.0.1:PORT" of the first listener
	URL        string // "http://" + Addr
	AdminURL   string // "http://127.0.0.1:PORT", or "" when the admin listener is disabled
	ConfigPath string

	cmd     *exec.Cmd
	logPath string        // stdout and stderr of the process (a file, so children may inherit it)
	exited  chan struct{} // closed once the process has exited
	code    int           // exit code; valid after exited is closed
}

// StartGateway writes config (YAML) to a file in t.TempDir(), starts
// `shardgate -config FILE args...`, and waits up to 15s for the ready log
// line. The process is killed at cleanup if it still runs; the gateway logs
// are logged when the test failed.
func StartGateway(t *testing.T, config string, args ...string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{
		ConfigPath: filepath.Join(dir, "shardgate.yaml"),
		logPath:    filepath.Join(dir, "shardgate.log"),
		exited:     make(chan struct{}),
	}
	g.WriteConfig(t, config)
	logFile, err := os.Create(g.logPath)
	if err != nil {
		t.Fatalf("creating log file: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	g.cmd = exec.Command(binPath, append([]string{"-config", g.ConfigPath}, args...)...)
	g.cmd.Stdout = logFile
	g.cmd.Stderr = logFile
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", binPath, err)
	}
	go func() {
		_ = g.cmd.Wait()
		g.code = g.cmd.ProcessState.ExitCode()
		close(g.exited)
	}()
	t.Cleanup(func() { g.stop(t) })
	g.waitReady(t)
	return g
}

// waitReady polls the log for the ready line and fills in the addresses.
func (g *Gateway) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if listen, admin, ok := findReady(g.Logs()); ok {
			g.Addr = strings.Split(listen, ",")[0]
			g.URL = "http://" + g.Addr
			if admin != "" && admin != "-" {
				g.AdminURL = "http://" + admin
			}
			return
		}
		select {
		case <-g.exited:
			t.Fatalf("shardgate exited with code %d before it was ready; logs:\n%s", g.code, g.Logs())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("shardgate not ready after %v; logs:\n%s", readyTimeout, g.Logs())
		}
	}
}

// stop kills the process if it still runs and logs its output on failure.
func (g *Gateway) stop(t *testing.T) {
	select {
	case <-g.exited:
	default:
		_ = g.cmd.Process.Kill()
		select {
		case <-g.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("shardgate (pid %d) did not exit after SIGKILL", g.cmd.Process.Pid)
		}
	}
	if t.Failed() {
		t.Logf("shardgate logs:\n%s", g.Logs())
	}
}

// findReady returns the listen and admin values of the first ready line in
// logs, in slog's text or JSON format.
func findReady(logs string) (listen, admin string, ok bool) {
	for _, line := range strings.Split(logs, "\n") {
		if strings.HasPrefix(line, "{") {
			var rec struct{ Msg, Listen, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "ready" {
				return rec.Listen, rec.Admin, true
			}
			continue
		}
		fields := textFields(line)
		if fields["msg"] == "ready" {
			return fields["listen"], fields["admin"], true
		}
	}
	return "", "", false
}

// textFields splits one slog text line into key=value pairs, unquoting
// quoted values.
func textFields(line string) map[string]string {
	fields := map[string]string{}
	for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimSpace(rest) {
		key, after, found := strings.Cut(rest, "=")
		if !found {
			break
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			quoted, err := strconv.QuotedPrefix(after)
			if err != nil {
				break
			}
			value, _ = strconv.Unquote(quoted)
			rest = after[len(quoted):]
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		fields[key] = value
	}
	return fields
}

// Logs returns everything the process wrote to stdout and stderr so far.
func (g *Gateway) Logs() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", g.logPath, err)
	}
	return string(b)
}

// WaitForLog waits up to timeout until the logs contain substr and fails the
// test otherwise.
func (g *Gateway) WaitForLog(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(g.Logs(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("logs do not contain %q after %v; logs:\n%s", substr, timeout, g.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pid returns the process id of the gateway.
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }

// Signal sends sig to the gateway process.
func (g *Gateway) Signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to shardgate: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code
// (-1 when a signal killed it).
func (g *Gateway) Wait(timeout time.Duration) (int, error) {
	select {
	case <-g.exited:
		return g.code, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("shardgate (pid %d) still running after %v", g.cmd.Process.Pid, timeout)
	}
}

// Metrics GETs AdminURL+"/metrics" and returns the body.
func (g *Gateway) Metrics(t *testing.T) string {
	t.Helper()
	if g.AdminURL == "" {
		t.Fatal("Metrics: the admin listener is disabled")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(g.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200; body: %s", resp.StatusCode, body)
	}
	return string(body)
}

// WriteConfig replaces the contents of the config file.
func (g *Gateway) WriteConfig(t *testing.T, config string) {
	t.Helper()
	tmp := g.ConfigPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		t.Fatalf("writing config: %v", err)
	}
	if err := os.Rename(tmp, g.ConfigPath); err != nil {
		t.Fatalf("replacing config: %v", err)
	}
}

// Reload writes config to the config file and sends SIGHUP.
func (g *Gateway) Reload(t *testing.T, config string) {
	t.Helper()
	g.WriteConfig(t, config)
	g.Signal(t, syscall.SIGHUP)
}

// RecordedRequest is what a Recorder saw of one request.
type RecordedRequest struct {
	Method     string
	RequestURI string // path and query as sent on the request line
	Host       string
	Header     http.Header
	Body       []byte
}

// Recorder is a net/http test backend on 127.0.0.1:0 that records the last
// request it received and counts them. It is safe for concurrent use.
type Recorder struct {
	*httptest.Server

	count atomic.Int64

	mu   sync.Mutex // protects last
	last RecordedRequest
}

// NewRecorder starts a Recorder that records each request (reading its whole
// body) and then hands it to h with the body replayable; a nil h answers
// 200 "ok". The server is closed at cleanup.
func NewRecorder(t *testing.T, h http.HandlerFunc) *Recorder {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	}
	rec := &Recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.last = RecordedRequest{
			Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header.Clone(), Body: body,
		}
		rec.mu.Unlock()
		rec.count.Add(1)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// Addr returns the backend's "127.0.0.1:PORT".
func (r *Recorder) Addr() string { return r.Listener.Addr().String() }

// Last returns the most recent request; its zero value before any.
func (r *Recorder) Last() RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Count returns how many requests the backend has received.
func (r *Recorder) Count() int { return int(r.count.Load()) }

// Curl runs the system curl with -sS and args (killed after 60s) and returns
// its stdout, stderr and exit code. It fails the test when curl is missing.
func Curl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-sS"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("running curl: %v", err)
	}
	return out.String(), errOut.String(), code
}

// HeaderField is one header line as it appeared on the wire.
type HeaderField struct{ Name, Value string }

// RawBackend is a TCP backend on 127.0.0.1:0 that records the raw header
// block of every request, exactly as the gateway wrote it, and answers each
// request with a fixed raw response. It is safe for concurrent use.
type RawBackend struct {
	ln       net.Listener
	response string
	wg       sync.WaitGroup

	mu    sync.Mutex // protects heads and conns
	heads []string
	conns map[net.Conn]struct{}
}

// NewRawBackend starts a RawBackend that writes response (a complete HTTP/1.1
// response) for every request; "" means 200 with body "ok". It stops at
// cleanup.
func NewRawBackend(t *testing.T, response string) *RawBackend {
	t.Helper()
	if response == "" {
		response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	b := &RawBackend{ln: ln, response: response, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.close)
	return b
}

// Addr returns the backend's "127.0.0.1:PORT".
func (b *RawBackend) Addr() string { return b.ln.Addr().String() }

// Heads returns the header blocks received so far, oldest first, each with
// its request line and without the final empty line.
func (b *RawBackend) Heads() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.heads...)
}

func (b *RawBackend) serve() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[conn] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serveConn(conn)
	}
}

func (b *RawBackend) serveConn(conn net.Conn) {
	defer b.wg.Done()
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		head, err := ReadHead(br)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.heads = append(b.heads, head)
		b.mu.Unlock()
		if err := skipBody(br, head); err != nil {
			return
		}
		if _, err := io.WriteString(conn, b.response); err != nil {
			return
		}
	}
}

func (b *RawBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// skipBody discards the request body that follows head.
func skipBody(br *bufio.Reader, head string) error {
	_, fields := ParseHead(head)
	if te := HeaderValues(fields, "Transfer-Encoding"); len(te) > 0 {
		if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
			return err
		}
		_, err := ReadHead(br) // trailer section
		return err
	}
	if cl := HeaderValues(fields, "Content-Length"); len(cl) == 1 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil {
			return err
		}
		_, err = io.CopyN(io.Discard, br, n)
		return err
	}
	return nil
}

// ReadHead reads lines up to and including the empty line that ends a
// header block and returns them joined by "\r\n", without the empty line.
func ReadHead(br *bufio.Reader) (string, error) {
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return strings.Join(lines, "\r\n"), nil
		}
		lines = append(lines, line)
	}
}

// ParseHead splits a header block into its first line and its fields.
func ParseHead(head string) (first string, fields []HeaderField) {
	lines := strings.Split(head, "\r\n")
	for _, line := range lines[1:] {
		name, value, _ := strings.Cut(line, ":")
		fields = append(fields, HeaderField{Name: name, Value: strings.TrimSpace(value)})
	}
	return lines[0], fields
}

// HeaderValues returns the values of every field named name (any case).
func HeaderValues(fields []HeaderField, name string) []string {
	var values []string
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			values = append(values, f.Value)
		}
	}
	return values
}

// DialRaw opens a TCP connection to addr for hand-written requests; it has a
// 15s deadline and is closed at cleanup.
func DialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	return conn, bufio.NewReader(conn)
}

// RawRoundTrip writes request (raw bytes) on conn and reads one response for
// a request with the given method; the body is read completely.
func RawRoundTrip(t *testing.T, conn net.Conn, br *bufio.Reader, method, request string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response to %q: %v", firstLine(request), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of response to %q: %v", firstLine(request), err)
	}
	return resp, body
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// get GETs url with Go's client and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

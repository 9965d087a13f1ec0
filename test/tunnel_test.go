package test

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// wsProcess is a python3-websockets script (app/ws.py) with its output
// lines on a channel.
type wsProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startWS(t *testing.T, args ...string) *wsProcess {
	t.Helper()
	python := gunicornPython(t)
	if out, err := exec.Command(python, "-c", "import websockets").CombinedOutput(); err != nil {
		t.Fatalf("python3-websockets is required (apt-get install python3-websockets): %v: %s", err, out)
	}
	script, err := filepath.Abs(filepath.Join("app", "ws.py"))
	if err != nil {
		t.Fatal(err)
	}
	p := &wsProcess{cmd: exec.Command(python, append([]string{script}, args...)...), lines: make(chan string, 100)}
	p.stdin, _ = p.cmd.StdinPipe()
	stdout, _ := p.cmd.StdoutPipe()
	var stderr strings.Builder
	p.cmd.Stderr = &stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("ws.py %v stderr:\n%s", args, stderr.String())
		}
	})
	return p
}

// expect waits for the next output line and fails unless it starts with
// want.
func (p *wsProcess) expect(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok || !strings.HasPrefix(line, want) {
			t.Fatalf("ws.py said %q (open %v), want %q", line, ok, want)
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("ws.py did not say %q within %v", want, timeout)
	}
	return ""
}

func tunnelConfig(backend, queueTimeout string) string {
	return fmt.Sprintf(loopbackListeners+`server: {shutdown_timeout: 1500ms}
upstreams:
  app:
    queue: {timeout: %s}
    backends: [{address: %s, max_inflight: 1}]
routes: [{upstream: app}]
`, queueTimeout, backend)
}

// TestTunnelWebSocket runs a python3-websockets echo through the gateway:
// a non-101 answer to an upgrade request is an ordinary response; 1,000
// messages of up to 64 KiB go both ways byte for byte; the open tunnel
// holds the backend's only slot (a plain request queues and is shed) and
// is counted; a reload that keeps the backend keeps the tunnel; SIGTERM
// closes it once shutdown_timeout has passed.
func TestTunnelWebSocket(t *testing.T) {
	addr := closedAddr(t)
	srv := startWS(t, "server", addr)
	srv.expect(t, "listening", 20*time.Second)
	g := StartGateway(t, tunnelConfig(addr, "500ms"))

	stdout, _, _ := Curl(t, "-s", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
		"-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"-w", " %{http_code}", g.URL+"/plain")
	if stdout != "plain 200" {
		t.Fatalf("upgrade request answered without 101 = %q, want \"plain 200\"", stdout)
	}

	cl := startWS(t, "client", "ws://"+g.Addr+"/echo", "1000")
	cl.expect(t, "echoed 1000", 90*time.Second)

	m := parseMetrics(t, g.Metrics(t))
	if v, _ := m.value("shardgate_tunnels_open", map[string]string{"upstream": "app"}); v != 1 {
		t.Errorf("shardgate_tunnels_open = %v, want 1", v)
	}
	if v, _ := m.value("shardgate_backend_inflight", map[string]string{"upstream": "app", "backend": addr}); v != 1 {
		t.Errorf("shardgate_backend_inflight = %v, want 1 (the tunnel's slot)", v)
	}
	if code, body := get(t, g.URL+"/plain"); code != 503 || body != "queue timeout\n" {
		t.Errorf("plain request while the tunnel holds the only slot = %d %q, want 503 queue timeout", code, body)
	}

	g.Reload(t, tunnelConfig(addr, "600ms"))
	g.WaitForLog(t, "reloaded", 10*time.Second)
	io.WriteString(cl.stdin, "ping\n")
	cl.expect(t, "pong", 10*time.Second)

	term := time.Now()
	g.Signal(t, syscall.SIGTERM)
	cl.expect(t, "closed", 10*time.Second)
	if took := time.Since(term); took < time.Second {
		t.Errorf("tunnel closed %v after SIGTERM, want it open until shutdown_timeout (1.5s)", took)
	}
	if _, err := g.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestTunnelLimitsAndIdle: with max_tunnels 1 a second upgrade is answered
// 503 while the first tunnel is open; a tunnel with no traffic either way
// is closed after tunnel_idle_timeout, and its slot is freed.
func TestTunnelLimitsAndIdle(t *testing.T) {
	addr := closedAddr(t)
	srv := startWS(t, "server", addr)
	srv.expect(t, "listening", 20*time.Second)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    max_tunnels: 1
    tunnel_idle_timeout: 1s
    backends: [{address: %s, max_inflight: 4}]
routes: [{upstream: app}]
`, addr))
	cl := startWS(t, "client", "ws://"+g.Addr+"/echo", "10")
	cl.expect(t, "echoed 10", 30*time.Second)
	idleFrom := time.Now()
	stdout, _, _ := Curl(t, "-s", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
		"-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"-w", " %{http_code}", g.URL+"/echo")
	if stdout != "too many tunnels\n 503" {
		t.Errorf("second tunnel = %q, want 503 too many tunnels", stdout)
	}
	cl.expect(t, "closed", 10*time.Second)
	if idle := time.Since(idleFrom); idle < 900*time.Millisecond {
		t.Errorf("idle tunnel closed after %v, want tunnel_idle_timeout (1s)", idle)
	}
	wait.For(t, "the tunnel's slot to be freed", func() bool {
		m := parseMetrics(t, g.Metrics(t))
		open, _ := m.value("shardgate_tunnels_open", map[string]string{"upstream": "app"})
		inflight, _ := m.value("shardgate_backend_inflight", map[string]string{"upstream": "app", "backend": addr})
		return open == 0 && inflight == 0
	})
}

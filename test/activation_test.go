package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// With systemd socket activation (LISTEN_PID, LISTEN_FDS) the gateway serves
// on the socket it was handed instead of binding its own. The test holds the
// address with a plain socket (no SO_REUSEPORT), so a bind by the gateway
// would fail: serving proves the socket was inherited.
func TestSocketActivation(t *testing.T) {
	be := NewRecorder(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	cfg := filepath.Join(t.TempDir(), "shardgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [{address: %q}]
admin: {address: ""}
upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, addr, be.Addr())), 0o644)

	logs := filepath.Join(t.TempDir(), "log")
	out, _ := os.Create(logs)
	defer out.Close()
	// systemd sets LISTEN_PID to the service's own pid: exec keeps the shell's.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -config "$1"`, binPath, cfg)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	read := func() string { b, _ := os.ReadFile(logs); return string(b) }
	wait.For(t, "the ready line", func() bool { return strings.Contains(read(), "msg=ready") })
	if !strings.Contains(read(), "msg=\"socket activation\" listen="+addr) {
		t.Fatalf("no socket activation in the logs:\n%s", read())
	}
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "ok" {
		t.Fatalf("GET = %d %q, want 200 ok", code, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, read())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// screenshot saves a headless Chromium screenshot of url as path.
func screenshot(t *testing.T, url, path string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is required (apt-get install chromium): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=3000", "--window-size=1280,900", "--screenshot="+path, url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	killGroup := func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Cancel = killGroup
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = killGroup() })
}

// TestStatusPageHistory drives traffic through an upstream with one live
// and one dead backend for a few seconds, then loads the status page in
// headless Chromium: its graphs have samples with data, and the dead
// backend's ejection is listed with its reason. The screenshot is kept in
// the test's artefacts (go test -artifacts).
func TestStatusPageHistory(t *testing.T) {
	live := NewRecorder(t, nil)
	dead := closedAddr(t)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    balancer: round_robin
    backends: [{address: %s, max_inflight: 2}, {address: %s}]
routes: [{upstream: app}]
`, live.Addr(), dead))
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		get(t, g.URL+"/")
		time.Sleep(5 * time.Millisecond)
	}
	url := g.AdminURL + "/status?format=html"
	dom := dumpDOM(t, url)
	canvases := regexp.MustCompile(`<canvas[^>]*data-samples="(\d+)"[^>]*data-max="([\d.]+)"`).FindAllStringSubmatch(dom, -1)
	if len(canvases) != 4 {
		t.Fatalf("status page has %d graphs, want 4; DOM:\n%s", len(canvases), dom)
	}
	samples, _ := strconv.Atoi(canvases[0][1])
	top, _ := strconv.ParseFloat(canvases[0][2], 64)
	if samples < 3 || top < 10 {
		t.Errorf("requests/s graph has %d samples, max %v; want ≥ 3 samples and ≥ 10 requests/s", samples, top)
	}
	if want := dead + " down: ejected for 2s: connect failed"; !strings.Contains(dom, want) {
		t.Errorf("status page lacks the transition %q; DOM:\n%s", want, dom)
	}
	path := filepath.Join(t.ArtifactDir(), "status.png")
	screenshot(t, url, path)
	if fi, err := os.Stat(path); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (size %v)", path, err, fi)
	}
}

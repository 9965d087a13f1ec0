package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on contrib/systemd's
// units (systemd is a test dependency, see scripts/test-deps.sh). The units
// name /usr/bin/shardgate, which systemd checks exists: the copies verified
// name the binary under test instead, and nothing else changes.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is required (apt-get install systemd): %v", err)
	}
	dir := t.TempDir()
	var units []string
	for _, name := range []string{"shardgate.service", "shardgate.socket"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/bin/shardgate", binPath)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, path)
	}
	service, _ := os.ReadFile(units[0])
	for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"ExecReload=/bin/kill -HUP $MAINPID", "User=shardgate", "ExecStartPre=" + binPath + " -check"} {
		if !strings.Contains(string(service), want) {
			t.Errorf("shardgate.service lacks %q", want)
		}
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSpoolDir: shardgate -check verifies that server.spool_dir can
// hold spool files.
func TestCheckSpoolDir(t *testing.T) {
	config := func(dir string) string {
		return `listen:
  - address: "127.0.0.1:0"
server:
  spool_dir: ` + dir + `
upstreams:
  app:
    backends:
      - address: 127.0.0.1:8001
routes:
  - upstream: app
`
	}
	tests := []struct {
		name     string
		dir      string
		wantCode int
		wantOut  []string
	}{
		{"writable", t.TempDir(), 0, []string{"configuration ok"}},
		{"missing", filepath.Join(t.TempDir(), "nope"), 1, []string{"server.spool_dir: not writable"}},
		{"relative", "spool", 1, []string{"server.spool_dir: must be an absolute path", "(line 4)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shardgate.yaml")
			if err := os.WriteFile(path, []byte(config(tt.dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := runBinary(t, "-check", "-config", path)
			if code != tt.wantCode {
				t.Errorf("shardgate -check exit code = %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("shardgate -check output = %q, want it to contain %q", out, want)
				}
			}
			if entries, _ := os.ReadDir(tt.dir); tt.wantCode == 0 && len(entries) != 0 {
				t.Errorf("-check left %d files in spool_dir", len(entries))
			}
		})
	}
}

package listener

import (
	"os"
	"slices"
	"testing"
)

func TestExportImportLayout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	env, files := Export(map[string][]*os.File{"admin": {w}, "[::]:8080": {r, w}})
	if want := "[::]:8080=2,admin=1"; env != want {
		t.Fatalf("Export() env = %q, want %q", env, want)
	}
	if len(files) != 3 || files[0] != r || files[1] != w || files[2] != w {
		t.Fatalf("Export() files out of order: %v", files)
	}
	got, err := parseFiles(env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]uintptr{"[::]:8080": {3, 4}, "admin": {5}}
	for name, fds := range want {
		if !slices.Equal(got[name], fds) {
			t.Errorf("parseFiles()[%q] = %v, want %v", name, got[name], fds)
		}
	}
}

func TestParseFilesRejectsGarbage(t *testing.T) {
	for _, v := range []string{"x", "=1", "a=0", "a=-1", "a=b"} {
		if _, err := parseFiles(v); err == nil {
			t.Errorf("parseFiles(%q) = nil error, want one", v)
		}
	}
}

package listener

import (
	"net"
	"os"
	"slices"
	"strconv"
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

func TestMatchAddress(t *testing.T) {
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	any4, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer any4.Close()
	port := func(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }
	for _, tc := range []struct {
		name      string
		ln        net.Listener
		addresses []string
		want      string // "" = no match
	}{
		{"exact IP", lo, []string{":1", "127.0.0.1:" + port(lo)}, "127.0.0.1:" + port(lo)},
		{"specific socket, unspecified config", lo, []string{":" + port(lo)}, ""},
		{"unspecified socket, empty host", any4, []string{":" + port(any4)}, ":" + port(any4)},
		{"unspecified socket, 0.0.0.0", any4, []string{"0.0.0.0:" + port(any4)}, "0.0.0.0:" + port(any4)},
		{"other port", lo, []string{"127.0.0.1:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.ln.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := matchAddress(f, tc.addresses)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("matchAddress() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

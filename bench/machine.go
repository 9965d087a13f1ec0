package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
)

// Paths of the Debian-packaged programs the benchmark needs.
const (
	gunicornPath = "/usr/bin/gunicorn"
	pythonPath   = "/usr/bin/python3"
)

var errMissing = errors.New("bench: required programs are missing")

// tools are the resolved paths of the programs the benchmark runs.
type tools struct {
	wrk, haproxy, nginx string
	shardgate           string // built from ./cmd/shardgate or given by -shardgate
	backend             string // built from ./bench/backend
}

// requirement is one program and the Debian package that brings it.
type requirement struct {
	what    string
	pkg     string
	found   func() (string, bool)
	neededF func(o *options) bool
}

func lookPath(name string) func() (string, bool) {
	return func() (string, bool) {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := dir + "/" + name
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				return p, true
			}
		}
		return "", false
	}
}

func executable(path string) func() (string, bool) {
	return func() (string, bool) {
		st, err := os.Stat(path)
		return path, err == nil && st.Mode()&0o111 != 0
	}
}

func pythonFlask() (string, bool) {
	err := exec.Command(pythonPath, "-c", "import flask").Run()
	return pythonPath, err == nil
}

// checkTools finds every program the selected scenarios and proxies need and
// names the Debian package of each one missing.
func checkTools(o *options) (tools, error) {
	always := func(*options) bool { return true }
	reqs := []requirement{
		{"wrk", "wrk", lookPath("wrk"), always},
		{"haproxy", "haproxy", lookPath("haproxy"), func(o *options) bool { return o.hasProxy(nameHAProxy) }},
		{"nginx", "nginx-light", lookPath("nginx"), func(o *options) bool { return o.hasProxy(nameNginx) }},
		{gunicornPath, "gunicorn", executable(gunicornPath), func(o *options) bool { return o.needsGunicorn() }},
		{pythonPath + " with flask", "python3-flask", pythonFlask, func(o *options) bool { return o.needsGunicorn() }},
	}
	var t tools
	var missing []string
	for _, r := range reqs {
		if !r.neededF(o) {
			continue
		}
		p, ok := r.found()
		if !ok {
			missing = append(missing, fmt.Sprintf("  %s: apt-get install %s", r.what, r.pkg))
			continue
		}
		switch r.what {
		case "wrk":
			t.wrk = p
		case "haproxy":
			t.haproxy = p
		case "nginx":
			t.nginx = p
		}
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("%w:\n%s", errMissing, strings.Join(missing, "\n"))
	}
	return t, nil
}

// raiseNoFile lifts RLIMIT_NOFILE to want (soft and hard when allowed, as
// root) through syscall.Setrlimit, so that every child inherits it. It
// returns the soft limit in force afterwards.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	next := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err == nil {
		return want, nil
	}
	next = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		return lim.Cur, fmt.Errorf("setrlimit: %w", err)
	}
	return lim.Max, nil
}

// machineInfo describes the machine and the software versions for the
// report's header.
func machineInfo(t tools) []string {
	lines := []string{
		fmt.Sprintf("CPU: %s, nproc %d", cpuModel(), runtime.NumCPU()),
		"kernel: " + firstLine(readFile("/proc/sys/kernel/osrelease")),
		"load average at start: " + firstLine(readFile("/proc/loadavg")),
		"go: " + firstLine(commandOutput("go", "version")),
	}
	if t.haproxy != "" {
		v := firstLine(commandOutput(t.haproxy, "-v"))
		lines = append(lines, "haproxy: "+strings.TrimPrefix(v, "HAProxy version "))
	}
	if t.nginx != "" {
		v := firstLine(commandOutput(t.nginx, "-v"))
		lines = append(lines, "nginx: "+strings.TrimPrefix(v, "nginx version: "))
	}
	if t.shardgate != "" {
		lines = append(lines, "shardgate: "+firstLine(commandOutput(t.shardgate, "-version")))
	}
	lines = append(lines,
		"gunicorn: "+firstLine(commandOutput(gunicornPath, "--version")),
		"wrk: "+firstLine(commandOutput(t.wrk, "-v")))
	return lines
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	return parseCPUModel(readFile("/proc/cpuinfo"))
}

func parseCPUModel(cpuinfo string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return string(b)
}

func commandOutput(name string, args ...string) string {
	if name == "" {
		return "not found"
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	return string(out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

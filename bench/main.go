// Command bench runs shardgate, HAProxy, nginx and no proxy at all ("direct")
// side by side on this machine, in the same run, and reports each figure as a
// ratio to HAProxy's. Everything listens on 127.0.0.1; every load run is
// bounded in time; every process it starts is stopped by its PID, also on
// Ctrl-C or failure.
//
//	go run ./bench -rounds 3 -out bench/results.md
//	go run ./bench -quick -proxies haproxy,nginx,direct
//
// It needs wrk, haproxy, nginx, /usr/bin/gunicorn and /usr/bin/python3 with
// Flask (Debian: wrk haproxy nginx-light gunicorn python3-flask). It is a
// program, not a test: `go test ./...` never runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	rounds       int
	quick        bool
	duration     time.Duration // each measured run
	warmup       time.Duration // unmeasured run before each measured one; 0 = none
	conns        int
	wrkTimeout   time.Duration
	idleConns    int
	idleDuration time.Duration
	unevenLimit  int // per-backend limit in the uneven scenario; 0 = none
	out          string
	proxies      []string
	scenarios    []string
	shardgate    string // prebuilt binary; empty = build ./cmd/shardgate
	keep         bool

	largeClients int // the large scenario: concurrent clients
	largeMB      int // MB each transfers
	largeRate    int // MB/s each client reads or sends at
}

func (o *options) hasProxy(name string) bool { return slices.Contains(o.proxies, name) }

func (o *options) needsGunicorn() bool {
	if slices.Contains(o.scenarios, largeName) {
		return true
	}
	for _, s := range scenarios(o.unevenLimit) {
		if s.gunicorn && slices.Contains(o.scenarios, s.name) {
			return true
		}
	}
	return false
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every proxy once per scenario; medians are reported")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 3 s runs, 1 round, short warm-up (explicit flags win)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured wrk run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measured one (0 = none)")
	fs.IntVar(&o.conns, "c", 64, "wrk connections")
	fs.DurationVar(&o.wrkTimeout, "timeout", 8*time.Second, "wrk --timeout: replies later than this count as timeout errors")
	fs.IntVar(&o.idleConns, "idle-conns", 10000, "idle keep-alive connections held open in the idle scenario")
	fs.DurationVar(&o.idleDuration, "idle-duration", 5*time.Second, "length of the wrk run in the idle scenario")
	fs.IntVar(&o.unevenLimit, "uneven-limit", 2, "per-backend limit in the uneven scenario (0 = none; 2 = the gunicorn workers)")
	fs.StringVar(&o.out, "out", "", "write the markdown report to this file as well")
	proxies := fs.String("proxies", strings.Join(allProxies, ","), "proxies to run, in this order")
	names := fs.String("scenarios", "raw,overload,uneven,idle,tls-keepalive,tls-handshake", "scenarios to run")
	fs.StringVar(&o.shardgate, "shardgate", "", "shardgate binary to use instead of building ./cmd/shardgate")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, wrk output)")
	fs.IntVar(&o.largeClients, "large-clients", 10, "large scenario: clients at once")
	fs.IntVar(&o.largeMB, "large-mb", 100, "large scenario: MB each client downloads and uploads")
	fs.IntVar(&o.largeRate, "large-rate", 10, "large scenario: MB/s each client reads and sends at")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		o.applyQuick(set)
	}
	o.proxies, o.scenarios = splitList(*proxies), splitList(*names)
	return o, o.validate()
}

// applyQuick shortens every run whose length was not given explicitly.
func (o *options) applyQuick(set map[string]bool) {
	defaults := []struct {
		name string
		f    func()
	}{
		{"rounds", func() { o.rounds = 1 }},
		{"duration", func() { o.duration = 3 * time.Second }},
		{"warmup", func() { o.warmup = time.Second }},
		{"idle-duration", func() { o.idleDuration = 2 * time.Second }},
	}
	for _, d := range defaults {
		if !set[d.name] {
			d.f()
		}
	}
}

func (o *options) validate() error {
	if o.rounds < 1 || o.conns < 1 || o.duration < time.Second || o.idleConns < 0 || o.unevenLimit < 0 {
		return errors.New("-rounds and -c must be ≥ 1, -duration ≥ 1s, -idle-conns and -uneven-limit ≥ 0")
	}
	for _, p := range o.proxies {
		if !slices.Contains(allProxies, p) {
			return fmt.Errorf("unknown proxy %q (have %s)", p, strings.Join(allProxies, ", "))
		}
	}
	for _, n := range o.scenarios {
		if n != largeName && !slices.ContainsFunc(scenarios(o.unevenLimit), func(s scenario) bool { return s.name == n }) {
			return fmt.Errorf("unknown scenario %q", n)
		}
	}
	if len(o.proxies) == 0 || len(o.scenarios) == 0 {
		return errors.New("no proxy or no scenario selected")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = run(ctx, o)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "bench: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// commandLine is how the user started the benchmark, for the report.
func commandLine() string {
	prog := os.Args[0]
	if strings.Contains(prog, "go-build") {
		prog = "go run ./bench"
	}
	parts := []string{prog}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

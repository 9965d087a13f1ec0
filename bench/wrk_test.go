package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// nginxOverloadOutput is wrk's real output from the overload scenario with
// nginx, which answers 502 once max_conns is reached.
const nginxOverloadOutput = `Running 3s test @ http://127.0.0.1:33463/work?ms=20
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.55ms   19.68ms 213.70ms   90.20%
    Req/Sec     5.74k     4.97k   24.88k    74.14%
  Latency Distribution
     50%    3.43ms
     75%   13.39ms
     90%   30.79ms
     99%  102.20ms
  33616 requests in 3.02s, 9.99MB read
  Non-2xx or 3xx responses: 33092
Requests/sec:  11112.95
Transfer/sec:      3.30MB
BENCH summary requests=33616 duration_us=3024939 bytes=10479444 connect=0 read=0 write=0 status=33092 timeout=0
BENCH latency p50=3426 p90=30793 p99=102197 max=213697
BENCH status code=502 count=13646
BENCH status code=200 count=235
BENCH status code=502 count=19446
BENCH status code=200 count=289
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(nginxOverloadOutput)
	if err != nil {
		t.Fatalf("parseWrk() error = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"requests", got.requests, uint64(33616)},
		{"elapsed", got.elapsed, 3024939 * time.Microsecond},
		{"non2xx", got.non2xx, uint64(33092)},
		{"p50", got.p50, 3426 * time.Microsecond},
		{"p99", got.p99, 102197 * time.Microsecond},
		{"max", got.max, 213697 * time.Microsecond},
		{"502s summed over threads", got.codes[502], uint64(13646 + 19446)},
		{"200s summed over threads", got.codes[200], uint64(235 + 289)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("parseWrk() %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseWrkSocketErrors(t *testing.T) {
	out := "BENCH summary requests=10 duration_us=1000000 bytes=5 connect=1 read=2 write=3 status=0 timeout=4\n"
	got, err := parseWrk(out)
	if err != nil {
		t.Fatalf("parseWrk() error = %v", err)
	}
	if got.connect != 1 || got.read != 2 || got.write != 3 || got.timeout != 4 {
		t.Errorf("parseWrk() errors = connect %d read %d write %d timeout %d, want 1 2 3 4",
			got.connect, got.read, got.write, got.timeout)
	}
	if got.codes != nil {
		t.Errorf("parseWrk() codes = %v, want nil when not counted", got.codes)
	}
}

func TestParseWrkFailures(t *testing.T) {
	tests := []struct {
		name string
		out  string
	}{
		{"no summary", "unable to connect to 127.0.0.1:1 Connection refused\n"},
		{"field without value", "BENCH summary requests\n"},
		{"negative count", "BENCH summary requests=-1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseWrk(tt.out); err == nil {
				t.Errorf("parseWrk(%q) error = nil, want an error", tt.out)
			}
		})
	}
	if _, err := parseWrk("nothing\n"); !errors.Is(err, errNoSummary) {
		t.Errorf("parseWrk() error = %v, want %v", err, errNoSummary)
	}
}

func TestWrkArgs(t *testing.T) {
	base := wrkParams{url: "http://127.0.0.1:1/", threads: 2, conns: 64,
		duration: 10 * time.Second, timeout: 8 * time.Second}
	tests := []struct {
		name    string
		targets []string
		want    string
	}{
		{"through a proxy", nil, "-t 2 -c 64 -d 10s --timeout 8s"},
		{"direct to two backends", []string{"127.0.0.1:1", "127.0.0.1:2"}, "-t 2 -c 64 -d 10s"},
		{"direct to three backends", []string{"a:1", "b:2", "c:3"}, "-t 3 -c 63 -d 10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			p.targets = tt.targets
			got := strings.Join(wrkArgs(p, "s.lua"), " ")
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("wrkArgs() = %q, want it to start with %q", got, tt.want)
			}
		})
	}
}

func TestWholeSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1s"}, {500 * time.Millisecond, "1s"}, {3 * time.Second, "3s"}, {2500 * time.Millisecond, "3s"},
	}
	for _, tt := range tests {
		if got := wholeSeconds(tt.d); got != tt.want {
			t.Errorf("wholeSeconds(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestWrkScript(t *testing.T) {
	plain := wrkScript(wrkParams{})
	if strings.Contains(plain, "function response") {
		t.Error("wrkScript() defines response() without countStatus; it slows wrk down")
	}
	counting := wrkScript(wrkParams{countStatus: true, targets: []string{"127.0.0.1:8001", "127.0.0.1:8002"}})
	for _, want := range []string{"function response", `{"127.0.0.1", "8001"}`, `{"127.0.0.1", "8002"}`, "function done"} {
		if !strings.Contains(counting, want) {
			t.Errorf("wrkScript() lacks %q:\n%s", want, counting)
		}
	}
	if slices.ContainsFunc(strings.Split(plain, "\n"), func(l string) bool { return strings.Contains(l, "\t") }) {
		t.Error("wrkScript() contains tabs")
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0}, {[]float64{5}, 5}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}

func TestFormatNum(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.6061, "0.606"}, {2.561, "2.56"}, {69.24, "69.2"}, {392.4, "392"},
		{22755.4, "22,755"}, {1234567, "1,234,567"},
	}
	for _, tt := range tests {
		if got := formatNum(tt.v); got != tt.want {
			t.Errorf("formatNum(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func run1(requests, non2xx uint64, p99 time.Duration, ticks uint64) runResult {
	return runResult{
		wrk: wrkResult{requests: requests, non2xx: non2xx, elapsed: 10 * time.Second,
			p50: p99 / 2, p99: p99, codes: map[int]uint64{502: non2xx}},
		cpuTicks: ticks, rssKiB: 10240, measured: true, shares: []uint64{60, 30, 10},
	}
}

func TestSummarizeTakesMedians(t *testing.T) {
	s := summarize("haproxy", []runResult{
		run1(1000, 0, 30*time.Millisecond, 10),
		run1(3000, 1000, 10*time.Millisecond, 30),
		run1(2000, 500, 20*time.Millisecond, 1),
	})
	checks := []struct {
		name      string
		got, want float64
	}{
		{"rps", s.rps, 200},
		{"goodput", s.goodput, 150},
		{"p99 ms", s.p99, 20},
		{"non2xx", s.non2xx, 500},
		{"502s", s.codes[502], 500},
		{"cpu µs/req", s.cpuUS, 100}, // 10 ticks = 100 ms over 1000 requests
		{"rss MiB", s.rssMiB, 10},
		{"slow backend share %", s.shares[2], 10},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("summarize() %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestWriteTableRatiosToHAProxy(t *testing.T) {
	rows := []summary{
		summarize(nameShardgate, []runResult{run1(3000, 0, 10*time.Millisecond, 15)}),
		summarize(nameHAProxy, []runResult{run1(2000, 0, 20*time.Millisecond, 20)}),
		summarize(nameDirect, []runResult{{wrk: wrkResult{requests: 4000, elapsed: 10 * time.Second,
			p50: 2 * time.Millisecond, p99: 4 * time.Millisecond}}}),
		{proxy: nameNginx, failures: []string{"nginx: bench: process exited\nlog tail"}},
	}
	var b bytes.Buffer
	writeTable(&b, scenario{name: "raw"}, rows, 0)
	out := b.String()
	for _, want := range []string{
		"| shardgate | 300 (×1.50) | 300 (×1.50) | 5.00 (×0.50) | 10.0 (×0.50) | 50.0 (×0.50) | 10.0 (×1.00) | 0 |",
		"| haproxy | 200 (×1.00) |",
		"| direct | 400 (×2.00) | 400 (×2.00) | 2.00 (×0.20) | 4.00 (×0.20) | — | — | 0 |",
		"| nginx (1 of 1 runs failed) | — |",
		"- nginx failed: nginx: bench: process exited\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("writeTable() lacks %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n| "); n != len(rows) {
		t.Errorf("writeTable() has %d rows, want %d:\n%s", n, len(rows), out)
	}
}

func TestErrorsCell(t *testing.T) {
	tests := []struct {
		name string
		s    summary
		want string
	}{
		{"none", summary{}, "0"},
		{"socket errors", summary{read: 3, timeout: 1}, "read 3, timeout 1"},
		{"statuses", summary{non2xx: 1500, codes: map[int]float64{200: 10, 502: 1000, 503: 500}},
			"non-2xx 1,500 (502: 1,000, 503: 500)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorsCell(tt.s); got != tt.want {
				t.Errorf("errorsCell() = %q, want %q", got, tt.want)
			}
		})
	}
}

package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// summary is the median over the rounds of one proxy in one scenario.
type summary struct {
	proxy     string
	runs      int
	rps       float64 // responses per second
	goodput   float64 // 2xx responses per second
	p50, p99  float64 // milliseconds
	connect   float64 // socket errors by kind
	read      float64
	write     float64
	timeout   float64
	non2xx    float64
	codes     map[int]float64
	measured  bool    // cpuUS and rssMiB are valid
	cpuUS     float64 // proxy CPU microseconds per response
	rssMiB    float64
	shares    []float64 // percent of the backends' requests, per backend
	idleAlive float64
	failures  []string // why runs failed, one per failed run
}

// summarize takes the median of every figure over runs, each separately.
func summarize(proxy string, runs []runResult) summary {
	s := summary{proxy: proxy, runs: len(runs), codes: make(map[int]float64)}
	if len(runs) == 0 {
		return s
	}
	med := func(f func(r runResult) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	s.rps = med(func(r runResult) float64 { return perSecond(r.wrk.requests, r.wrk.elapsed) })
	s.goodput = med(func(r runResult) float64 {
		return perSecond(r.wrk.requests-min(r.wrk.non2xx, r.wrk.requests), r.wrk.elapsed)
	})
	s.p50 = med(func(r runResult) float64 { return ms(r.wrk.p50) })
	s.p99 = med(func(r runResult) float64 { return ms(r.wrk.p99) })
	s.connect = med(func(r runResult) float64 { return float64(r.wrk.connect) })
	s.read = med(func(r runResult) float64 { return float64(r.wrk.read) })
	s.write = med(func(r runResult) float64 { return float64(r.wrk.write) })
	s.timeout = med(func(r runResult) float64 { return float64(r.wrk.timeout) })
	s.non2xx = med(func(r runResult) float64 { return float64(r.wrk.non2xx) })
	for code := range allCodes(runs) {
		s.codes[code] = med(func(r runResult) float64 { return float64(r.wrk.codes[code]) })
	}
	s.measured = runs[0].measured
	if s.measured {
		s.cpuUS = med(func(r runResult) float64 {
			if r.wrk.requests == 0 {
				return 0
			}
			return float64(r.cpuTicks) * 1e6 / clockTicks / float64(r.wrk.requests)
		})
		s.rssMiB = med(func(r runResult) float64 { return float64(r.rssKiB) / 1024 })
	}
	for i := range runs[0].shares {
		s.shares = append(s.shares, med(func(r runResult) float64 { return sharePercent(r.shares, i) }))
	}
	s.idleAlive = med(func(r runResult) float64 { return float64(r.idleAlive) })
	return s
}

func allCodes(runs []runResult) map[int]bool {
	codes := make(map[int]bool)
	for _, r := range runs {
		for c := range r.wrk.codes {
			codes[c] = true
		}
	}
	return codes
}

func sharePercent(counts []uint64, i int) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 || i >= len(counts) {
		return 0
	}
	return 100 * float64(counts[i]) / float64(total)
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the middle value of xs (the mean of the two middle ones for
// an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// writeTable writes one scenario's markdown table; ratios are to base
// (HAProxy), when it ran.
func writeTable(w io.Writer, sc scenario, rows []summary, idleConns int) {
	var base *summary
	for i := range rows {
		if rows[i].proxy == nameHAProxy {
			base = &rows[i]
		}
	}
	extra := ""
	switch {
	case sc.shares:
		extra = "backend shares (last is slow)"
	case sc.idle:
		extra = "idle conns still open"
	}
	header := "| proxy | req/s | 2xx/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | errors |"
	rule := "|---|--:|--:|--:|--:|--:|--:|---|"
	if extra != "" {
		header += " " + extra + " |"
		rule += "---|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, rule)
	for _, r := range rows {
		name := r.proxy
		if len(r.failures) > 0 {
			name += fmt.Sprintf(" (%d of %d runs failed)", len(r.failures), len(r.failures)+r.runs)
		}
		if r.runs == 0 {
			fmt.Fprintf(w, "| %s |%s\n", name, strings.Repeat(" — |", strings.Count(rule, "|")-2))
			continue
		}
		cells := []string{
			name,
			withRatio(r.rps, baseOf(base, func(s summary) float64 { return s.rps }), true),
			withRatio(r.goodput, baseOf(base, func(s summary) float64 { return s.goodput }), true),
			withRatio(r.p50, baseOf(base, func(s summary) float64 { return s.p50 }), true),
			withRatio(r.p99, baseOf(base, func(s summary) float64 { return s.p99 }), true),
			withRatio(r.cpuUS, baseOf(base, func(s summary) float64 { return s.cpuUS }), r.measured),
			withRatio(r.rssMiB, baseOf(base, func(s summary) float64 { return s.rssMiB }), r.measured),
			errorsCell(r),
		}
		switch {
		case sc.shares:
			cells = append(cells, sharesCell(r.shares))
		case sc.idle:
			cells = append(cells, fmt.Sprintf("%s / %s", formatCount(r.idleAlive), formatCount(float64(idleConns))))
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	writeFailures(w, rows)
}

// writeFailures lists below the table why runs failed, each reason once.
func writeFailures(w io.Writer, rows []summary) {
	first := true
	for _, r := range rows {
		seen := make(map[string]bool)
		for _, f := range r.failures {
			if seen[f] {
				continue
			}
			seen[f] = true
			if first {
				fmt.Fprintln(w)
				first = false
			}
			fmt.Fprintf(w, "- %s failed: %s\n", r.proxy, firstLine(f))
		}
	}
}

// baseOf returns figure f of base, or 0 (no ratio) when there is no base.
func baseOf(base *summary, f func(summary) float64) float64 {
	if base == nil || base.runs == 0 {
		return 0
	}
	return f(*base)
}

// withRatio formats v followed by its ratio to base; "—" when v does not
// apply.
func withRatio(v, base float64, applies bool) string {
	if !applies {
		return "—"
	}
	s := formatNum(v)
	if base > 0 {
		s += fmt.Sprintf(" (×%.2f)", v/base)
	}
	return s
}

// formatNum prints v with three significant digits below 100 and with
// thousands separators above.
func formatNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case math.Abs(v) < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case math.Abs(v) < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	digits := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 && digits[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatCount prints a count rounded to an integer, with thousands
// separators.
func formatCount(v float64) string {
	if v = math.Round(v); v < 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return formatNum(v)
}

// errorsCell lists the non-zero error counts: socket errors by kind and
// responses of 400 and above, by status when counted.
func errorsCell(s summary) string {
	var parts []string
	for _, e := range []struct {
		name string
		n    float64
	}{{"connect", s.connect}, {"read", s.read}, {"write", s.write}, {"timeout", s.timeout}} {
		if e.n > 0 {
			parts = append(parts, e.name+" "+formatCount(e.n))
		}
	}
	if s.non2xx > 0 {
		p := "non-2xx " + formatCount(s.non2xx)
		var codes []string
		for _, c := range slices.Sorted(maps.Keys(s.codes)) {
			if c >= 400 && s.codes[c] > 0 {
				codes = append(codes, fmt.Sprintf("%d: %s", c, formatCount(s.codes[c])))
			}
		}
		if len(codes) > 0 {
			p += " (" + strings.Join(codes, ", ") + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func sharesCell(shares []float64) string {
	parts := make([]string, len(shares))
	for i, p := range shares {
		parts[i] = fmt.Sprintf("%.0f%%", p)
	}
	return strings.Join(parts, " / ")
}

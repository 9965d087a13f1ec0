package demo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report writes a plain-text table to w: for each backend its name, address,
// workers, the highest concurrency observed against that limit ("2/2 ok" or
// "3/2 OVER LIMIT"), the most requests that ever waited for a worker, and the
// requests served; then one line with the burst's counts by status code.
// Errors writing to w are ignored.
func Report(w io.Writer, backends []*Backend, r BurstResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tADDRESS\tWORKERS\tMAX CONCURRENT\tMAX WAITING\tSERVED")
	for _, b := range backends {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", b.Name, b.Addr, workers(b),
			concurrency(b), b.MaxWaiting(), b.Served())
	}
	_ = tw.Flush()
	fmt.Fprintln(w, burstLine(r))
}

// workers returns the limit Start applies: at least 1.
func workers(b *Backend) int { return max(b.Workers, 1) }

// concurrency renders MaxInside against the worker limit.
func concurrency(b *Backend) string {
	got, limit := b.MaxInside(), int64(workers(b))
	verdict := "ok"
	if got > limit {
		verdict = "OVER LIMIT"
	}
	return fmt.Sprintf("%d/%d %s", got, limit, verdict)
}

// burstLine renders r as "burst: N requests in D: 200=a 503=b errors=c".
func burstLine(r BurstResult) string {
	codes := make([]int, 0, len(r.Status))
	total := r.Errors
	for c, k := range r.Status {
		codes = append(codes, c)
		total += k
	}
	slices.Sort(codes)
	var sb strings.Builder
	fmt.Fprintf(&sb, "burst: %d requests in %s:", total, r.Elapsed.Round(time.Millisecond))
	for _, c := range codes {
		fmt.Fprintf(&sb, " %d=%d", c, r.Status[c])
	}
	fmt.Fprintf(&sb, " errors=%d", r.Errors)
	return sb.String()
}

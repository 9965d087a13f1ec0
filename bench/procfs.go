package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. It is 100
// on every Linux architecture Go supports.
const clockTicks = 100

var errStatFormat = errors.New("bench: malformed /proc stat line")

// procStat is what the benchmark reads from one /proc/PID/stat line.
type procStat struct {
	pid   int
	ppid  int
	ticks uint64 // utime + stime + cutime + cstime
}

// parseStat parses one /proc/PID/stat line. The command name sits in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(line string) (procStat, error) {
	open := strings.IndexByte(line, '(')
	closing := strings.LastIndexByte(line, ')')
	if open < 1 || closing < open {
		return procStat{}, errStatFormat
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procStat{}, fmt.Errorf("pid: %w", errStatFormat)
	}
	// After ')': state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(line[closing+1:])
	if len(f) < 15 {
		return procStat{}, errStatFormat
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", errStatFormat)
	}
	var ticks uint64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("times: %w", errStatFormat)
		}
		if n > 0 {
			ticks += uint64(n)
		}
	}
	return procStat{pid: pid, ppid: ppid, ticks: ticks}, nil
}

// parseStatusKiB returns the value in KiB of the field key (such as "VmHWM")
// of a /proc/PID/status file, and false when the field is absent (kernel
// threads and zombies have no memory fields).
func parseStatusKiB(status, key string) (uint64, bool) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// readAllStats reads /proc/*/stat for every process visible now. Processes
// that exit while it reads are skipped.
func readAllStats(procDir string) []procStat {
	dirs, _ := filepath.Glob(filepath.Join(procDir, "[0-9]*"))
	out := make([]procStat, 0, len(dirs))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		st, err := parseStat(string(b))
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return out
}

// treeOf returns root and all of its descendants found in stats.
func treeOf(root int, stats []procStat) []procStat {
	children := make(map[int][]procStat)
	var rootStat *procStat
	for i := range stats {
		children[stats[i].ppid] = append(children[stats[i].ppid], stats[i])
		if stats[i].pid == root {
			rootStat = &stats[i]
		}
	}
	if rootStat == nil {
		return nil
	}
	out := []procStat{*rootStat}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// treeUsage is the CPU and memory of a process tree at one instant.
type treeUsage struct {
	procs  int
	ticks  uint64 // CPU time in clock ticks, reaped children included
	hwmKiB uint64 // sum of VmHWM (peak resident set) over the live processes
}

// usageOf measures the process tree rooted at pid.
func usageOf(pid int) treeUsage {
	var u treeUsage
	for _, st := range treeOf(pid, readAllStats("/proc")) {
		u.procs++
		u.ticks += st.ticks
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.pid))
		if err != nil {
			continue
		}
		if kib, ok := parseStatusKiB(string(b), "VmHWM"); ok {
			u.hwmKiB += kib
		}
	}
	return u
}

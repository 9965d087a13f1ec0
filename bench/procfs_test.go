package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want procStat
	}{
		{
			name: "plain command",
			line: "5330 (nginx) S 5328 5328 4418 0 -1 4194304 102 0 0 0 250 40 7 3 20 0 1 0 113437 3133440 358",
			want: procStat{pid: 5330, ppid: 5328, ticks: 250 + 40 + 7 + 3},
		},
		{
			name: "command with spaces and parentheses",
			line: "77 (nginx: worker (x) y) S 1 77 77 0 -1 4194304 0 0 0 0 10 20 0 0 20 0 1 0 1 1 1\n",
			want: procStat{pid: 77, ppid: 1, ticks: 30},
		},
		{
			name: "negative child times are ignored",
			line: "9 (a) R 2 9 9 0 -1 0 0 0 0 0 5 5 -1 -1 20 0 1 0 1 1 1",
			want: procStat{pid: 9, ppid: 2, ticks: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.line)
			if err != nil {
				t.Fatalf("parseStat() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("parseStat() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatRejectsMalformed(t *testing.T) {
	for _, line := range []string{"", "12 nginx S 1 2", "x (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14", "1 (a) S 1 2 3"} {
		t.Run(line, func(t *testing.T) {
			if _, err := parseStat(line); !errors.Is(err, errStatFormat) {
				t.Errorf("parseStat(%q) error = %v, want %v", line, err, errStatFormat)
			}
		})
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    2000 kB\nVmRSS:\t    1900 kB\n"
	tests := []struct {
		key    string
		want   uint64
		wantOK bool
	}{
		{"VmHWM", 2000, true},
		{"VmRSS", 1900, true},
		{"VmSwap", 0, false},
		{"Vm", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := parseStatusKiB(status, tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseStatusKiB(%q) = %d, %v, want %d, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestTreeOf(t *testing.T) {
	stats := []procStat{
		{pid: 1, ppid: 0}, {pid: 10, ppid: 1}, {pid: 11, ppid: 10}, {pid: 12, ppid: 10},
		{pid: 13, ppid: 12}, {pid: 20, ppid: 1},
	}
	pids := func(ps []procStat) []int {
		var out []int
		for _, p := range ps {
			out = append(out, p.pid)
		}
		slices.Sort(out)
		return out
	}
	if got, want := pids(treeOf(10, stats)), []int{10, 11, 12, 13}; !slices.Equal(got, want) {
		t.Errorf("treeOf(10) = %v, want %v", got, want)
	}
	if got := treeOf(99, stats); got != nil {
		t.Errorf("treeOf(99) = %v, want nil for a process that is gone", got)
	}
}

func TestReadAllStatsSkipsVanishedProcesses(t *testing.T) {
	dir := t.TempDir()
	write := func(pid, content string) {
		if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if content != "" {
			if err := os.WriteFile(filepath.Join(dir, pid, "stat"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("5", "5 (a) S 1 5 5 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1")
	write("6", "") // exited between the listing and the read
	write("7", "garbage")
	got := readAllStats(dir)
	if len(got) != 1 || got[0].pid != 5 || got[0].ticks != 3 {
		t.Errorf("readAllStats() = %+v, want only pid 5 with 3 ticks", got)
	}
}

func TestUsageOfSelf(t *testing.T) {
	u := usageOf(os.Getpid())
	if u.procs < 1 || u.hwmKiB == 0 {
		t.Errorf("usageOf(self) = %+v, want at least one process with a peak RSS", u)
	}
}

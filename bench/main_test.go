package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		rounds     int
		duration   time.Duration
		proxies    []string
		gunicornOK bool
	}{
		{"defaults", nil, 3, 10 * time.Second, allProxies, true},
		{"quick", []string{"-quick"}, 1, 3 * time.Second, allProxies, true},
		{"explicit flags win over quick", []string{"-quick", "-rounds", "2", "-duration", "5s"}, 2, 5 * time.Second, allProxies, true},
		{"subset", []string{"-proxies", "haproxy, nginx,direct", "-scenarios", "raw,idle"}, 3, 10 * time.Second,
			[]string{nameHAProxy, nameNginx, nameDirect}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if err != nil {
				t.Fatalf("parseFlags(%q) error = %v", tt.args, err)
			}
			if o.rounds != tt.rounds || o.duration != tt.duration {
				t.Errorf("parseFlags(%q) rounds, duration = %d, %v, want %d, %v", tt.args, o.rounds, o.duration, tt.rounds, tt.duration)
			}
			if !slices.Equal(o.proxies, tt.proxies) {
				t.Errorf("parseFlags(%q) proxies = %q, want %q", tt.args, o.proxies, tt.proxies)
			}
			if o.needsGunicorn() != tt.gunicornOK {
				t.Errorf("parseFlags(%q).needsGunicorn() = %v, want %v", tt.args, o.needsGunicorn(), tt.gunicornOK)
			}
		})
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-proxies", "envoy"}, {"-scenarios", "spike"}, {"-rounds", "0"}, {"-proxies", ""}, {"stray"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) error = nil, want an error", args)
		}
	}
}

func TestParseCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got, want := parseCPUModel(info), "AMD EPYC 7B13"; got != want {
		t.Errorf("parseCPUModel() = %q, want %q", got, want)
	}
	if got := parseCPUModel("processor\t: 0\n"); got != "unknown" {
		t.Errorf("parseCPUModel(no model) = %q, want unknown", got)
	}
}

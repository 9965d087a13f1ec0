package config

import (
	"math"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "16384", want: 16384},
		{in: "5B", want: 5},
		{in: "16KiB", want: 16 << 10},
		{in: "16 KiB", want: 16 << 10},
		{in: "10MiB", want: 10 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "1KB", want: 1000},
		{in: "10MB", want: 10_000_000},
		{in: "3GB", want: 3_000_000_000},
		{in: "007", want: 7},
		{in: strconv.Itoa(math.MaxInt), want: math.MaxInt},
		{in: "", wantErr: `not a size: "": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "abc", wantErr: `not a size: "abc": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "KiB", wantErr: `not a size: "KiB": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "1.5MiB", wantErr: `not a size: "1.5MiB": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "16kib", wantErr: `not a size: "16kib": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "0x10", wantErr: `not a size: "0x10": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "+5", wantErr: `not a size: "+5": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "1 2KiB", wantErr: `not a size: "1 2KiB": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "-1", wantErr: `not a size: "-1": must not be negative`},
		{in: "-1KiB", wantErr: `not a size: "-1KiB": must not be negative`},
		{in: "99999999999999999999", wantErr: `not a size: "99999999999999999999": too large`},
		{in: "9223372036854775807KiB", wantErr: `not a size: "9223372036854775807KiB": too large`},
		{in: "9007199254740992KiB", wantErr: `not a size: "9007199254740992KiB": too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("parseSize(%q) = %d, %v; want error %q", tt.in, got, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "30s", want: 30 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "-5s", want: -5 * time.Second}, // parses; the field's check rejects it
		{in: "", wantErr: `not a duration: ""`},
		{in: "abc", wantErr: `not a duration: "abc"`},
		{in: "5 s", wantErr: `not a duration: "5 s"`},
		{in: "30", wantErr: `not a duration: "30": missing unit, like "30s"`},
		{in: "1.5", wantErr: `not a duration: "1.5": missing unit, like "1.5s"`},
		{in: "9999999999999h", wantErr: `not a duration: "9999999999999h"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("parseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = error
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.168.1.7", "192.168.1.7/32"},
		{"::1", "::1/128"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"example.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := parsePrefix(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parsePrefix(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if want := netip.MustParsePrefix(tt.want); err != nil || got != want {
			t.Errorf("parsePrefix(%q) = %v, %v; want %v", tt.in, got, err, want)
		}
	}
}

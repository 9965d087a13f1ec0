package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the size suffixes, longest first so "KiB" wins over "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

// parseSize parses a byte count: digits, optionally followed by one of the
// suffixes B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024),
// with or without a space between. "16KiB" is 16384.
func parseSize(s string) (int, error) {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimRight(n, " "), u.mult
			break
		}
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("not a size: %q: must not be negative", s)
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, fmt.Errorf("not a size: %q: want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > int64(math.MaxInt)/mult {
		return 0, fmt.Errorf("not a size: %q: too large", s)
	}
	return int(n * mult), nil
}

// parseDuration parses a Go duration such as "30s" or "1m30s"; a bare "0"
// is zero.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if s != "" && strings.Trim(s, "0123456789.") == "" {
		return 0, fmt.Errorf("not a duration: %q: missing unit, like %q", s, s+"s")
	}
	return 0, fmt.Errorf("not a duration: %q", s)
}

// parsePrefix parses a CIDR, stored masked, or a bare IP address, which
// becomes a /32 or /128.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR or IP address: %q", s)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not a CIDR or IP address: %q", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// listValue is a comma-separated list flag; repeating the flag adds to the list.
type listValue struct {
	items *[]string
	set   bool
}

func (l *listValue) String() string {
	if l == nil || l.items == nil {
		return ""
	}
	return strings.Join(*l.items, ",")
}

func (l *listValue) Set(s string) error {
	if !l.set {
		// The first explicit value replaces the default instead of adding to it.
		*l.items = nil
		l.set = true
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.items = append(*l.items, p)
		}
	}
	return nil
}

// parseSize reads a byte size: a whole number optionally followed by KiB, MiB or GiB
// (or K, M, G, meaning the same binary units).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size such as 1048576, 512KiB or 1MiB")
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}

// validHostname accepts DNS names (letters, digits, hyphens, dots) and, when wildcard is
// true, a leading "*." label.
func validHostname(h string, wildcard bool) bool {
	if wildcard && strings.HasPrefix(h, "*.") {
		h = h[2:]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// normalizeHost lower-cases a host name and drops a trailing dot; IP literals are
// written in their canonical form (so "::1" and "0:0::1" are one host).
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	return h
}

// parseAddr checks a listen address: host:port with a numeric port (host may be empty).
func parseAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port such as :8443 or 127.0.0.1:8443, got %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && !validHostname(strings.ToLower(host), false) {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host %q is neither an IP address nor a host name", host)
		}
	}
	return nil
}

// parseOrigin checks a CORS origin: scheme://host[:port] and nothing else.
func parseOrigin(s string) (string, error) {
	if s == "*" || s == "null" {
		return "", fmt.Errorf("%q is not allowed: list each trusted origin, e.g. https://app.example.com", s)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://app.example.com", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: an origin has no user, path, query or fragment", s)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}

// parsePrefix reads an IP address or CIDR block as a prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR block such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR block", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

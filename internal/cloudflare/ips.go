package cloudflare

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// The addresses Cloudflare publishes its edge ranges at.
const (
	IPsV4URL = "https://www.cloudflare.com/ips-v4"
	IPsV6URL = "https://www.cloudflare.com/ips-v6"
)

// maxRangesSize caps one downloaded range file; the real ones are a few
// hundred bytes.
const maxRangesSize = 64 << 10

//go:embed ips-v4.txt
var embeddedV4 []byte

//go:embed ips-v6.txt
var embeddedV6 []byte

// embeddedRanges parses the embedded files once. They are tested, so a
// failure here is a build defect.
var embeddedRanges = sync.OnceValue(func() []netip.Prefix {
	v4, err := parseRanges(embeddedV4, false)
	if err != nil {
		panic("cloudflare: embedded ips-v4.txt: " + err.Error())
	}
	v6, err := parseRanges(embeddedV6, true)
	if err != nil {
		panic("cloudflare: embedded ips-v6.txt: " + err.Error())
	}
	return append(v4, v6...)
})

// Ranges returns Cloudflare's published edge ranges as shipped with
// edgeban (IPv4 first, then IPv6). The caller may modify the slice.
func Ranges() []netip.Prefix {
	return slices.Clone(embeddedRanges())
}

// IsCloudflare reports whether addr belongs to Cloudflare's shipped edge
// ranges. A request arriving from one of them is Cloudflare's proxy, not
// the client, and must never be banned as such.
func IsCloudflare(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range embeddedRanges() {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// FetchRanges downloads Cloudflare's current ranges from v4URL and v6URL
// (IPsV4URL and IPsV6URL when empty) with hc (http.DefaultClient when nil).
// Every line must be a canonical prefix of the right family; an answer that
// is empty, not 200, or holds anything else is an error.
func FetchRanges(ctx context.Context, hc *http.Client, v4URL, v6URL string) ([]netip.Prefix, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if v4URL == "" {
		v4URL = IPsV4URL
	}
	if v6URL == "" {
		v6URL = IPsV6URL
	}
	v4, err := fetchRangeFile(ctx, hc, v4URL, false)
	if err != nil {
		return nil, err
	}
	v6, err := fetchRangeFile(ctx, hc, v6URL, true)
	if err != nil {
		return nil, err
	}
	return append(v4, v6...), nil
}

func fetchRangeFile(ctx context.Context, hc *http.Client, u string, v6 bool) ([]netip.Prefix, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("cloudflare: fetching ranges: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cloudflare: fetching ranges: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRangesSize+1))
	if err != nil {
		return nil, fmt.Errorf("cloudflare: fetching ranges from %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cloudflare: fetching ranges from %s: HTTP %d: %q", u, resp.StatusCode, snippet(body))
	}
	if len(body) > maxRangesSize {
		return nil, fmt.Errorf("cloudflare: fetching ranges from %s: answer larger than %d bytes", u, maxRangesSize)
	}
	ps, err := parseRanges(body, v6)
	if err != nil {
		return nil, fmt.Errorf("cloudflare: fetching ranges from %s: %w", u, err)
	}
	return ps, nil
}

// parseRanges parses one prefix per line. Blank lines are skipped; any
// other line must be a masked prefix of the expected family no wider than
// /8 (IPv4) or /12 (IPv6). At least one prefix is required.
func parseRanges(data []byte, v6 bool) ([]netip.Prefix, error) {
	family, minBits := "IPv4", 8
	if v6 {
		family, minBits = "IPv6", 12
	}
	var ps []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		p, err := netip.ParsePrefix(line)
		switch {
		case err != nil:
			return nil, fmt.Errorf("line %d: not a CIDR prefix: %q", n, sanitize(line, 60))
		case p.Addr().Is6() != v6 || p.Addr().Is4In6():
			return nil, fmt.Errorf("line %d: %s is not an %s prefix", n, p, family)
		case p != p.Masked():
			return nil, fmt.Errorf("line %d: %s has host bits set", n, p)
		case p.Bits() < minBits:
			return nil, fmt.Errorf("line %d: %s is implausibly wide", n, p)
		}
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no %s prefixes", family)
	}
	return ps, nil
}

package whois

import (
	"strings"
	"unicode/utf8"
)

// Summary is what a whois answer says about a network, each field as
// written there ("" when it says nothing). It is untrusted text.
type Summary struct {
	// Server is the server whose answer this is (set by
	// Result.Summary).
	Server string
	// Range is the network's range (RIPE's "inetnum", ARIN's
	// "NetRange"), CIDR its prefixes where the answer gives them apart.
	Range, CIDR string
	NetName     string
	// Org is the holder: its organisation's name, else the network's
	// first description.
	Org     string
	Country string
	// Abuse is where to report abuse: the address RIPE's answers
	// announce in a comment, an abuse-mailbox, or ARIN's OrgAbuseEmail.
	Abuse string
}

// maxValue bounds each field of a summary, in bytes.
const maxValue = 200

// summaryKeys are the keys each field is read from, by priority
// (lowercase: keys are matched whatever their case).
var summaryKeys = []struct {
	field func(*Summary) *string
	keys  []string
}{
	{func(s *Summary) *string { return &s.CIDR }, []string{"cidr"}},
	{func(s *Summary) *string { return &s.NetName }, []string{"netname"}},
	{func(s *Summary) *string { return &s.Org }, []string{"org-name", "orgname", "owner", "organisation", "descr"}},
	{func(s *Summary) *string { return &s.Country }, []string{"country"}},
	{func(s *Summary) *string { return &s.Abuse }, []string{"abuse-mailbox", "orgabuseemail"}},
}

// rangeKeys mark the start of a network's record.
var rangeKeys = []string{"inetnum", "inet6num", "netrange"}

// Summarize reads a whois answer's "key: value" lines. An answer may
// describe several networks, from the widest to the narrowest (ARIN's
// do: the registry's allocation, then its customer's); the summary is of
// the last one: each field is the first value of its keys from the last
// range line on (where the network's record and then its organisation's
// are), else from the start.
func Summarize(text string) Summary {
	type field struct{ key, value string }
	var fields []field
	var s Summary
	last := -1
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "%") {
			// RIPE: "% Abuse contact for '193.0.0.0 - 193.0.7.255' is 'abuse@ripe.net'"
			if rest, ok := strings.CutPrefix(line, "% Abuse contact for "); ok {
				if i := strings.LastIndex(rest, " is '"); i >= 0 && strings.HasSuffix(rest, "'") && s.Abuse == "" {
					s.Abuse = clip(rest[i+len(" is '") : len(rest)-1])
				}
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t#") {
			continue
		}
		key = strings.ToLower(key)
		value = strings.TrimSpace(value)
		if value == "" {
			continue
		}
		for _, k := range rangeKeys {
			if key == k {
				last = len(fields)
				s.Range = clip(value)
			}
		}
		fields = append(fields, field{key, value})
	}
	from := max(last, 0)
	first := func(key string) string {
		for _, part := range [][]field{fields[from:], fields[:from]} {
			for _, f := range part {
				if f.key == key {
					return f.value
				}
			}
		}
		return ""
	}
	for _, sk := range summaryKeys {
		dst := sk.field(&s)
		if *dst != "" {
			continue
		}
		for _, k := range sk.keys {
			if v := first(k); v != "" {
				*dst = clip(v)
				break
			}
		}
	}
	return s
}

// clip cuts v to maxValue bytes, on a character boundary.
func clip(v string) string {
	if len(v) <= maxValue {
		return v
	}
	n := maxValue
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n] + "..."
}

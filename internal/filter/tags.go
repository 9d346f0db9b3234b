package filter

import (
	"regexp"
	"strconv"
	"strings"
)

// Building blocks of fail2ban's address tags, as fail2ban writes them in
// Python regex syntax (Python 3 str-pattern semantics).
const (
	reIP4   = `(?:\d{1,3}\.){3}\d{1,3}`
	reIP6   = `(?:[0-9a-fA-F]{1,4}::?|:){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)`
	tagIP4  = `(?:::f{4,6}:)?(?P<ip4>` + reIP4 + `)`
	tagIP6  = `(?P<ip6>` + reIP6 + `)`
	tagDNS  = `(?P<dns>[\w\-.^_]*\w)`
	tagADDR = `\[?(?:` + tagIP4 + `|` + tagIP6 + `)\]?`
	tagHOST = `(?:` + tagADDR + `|` + tagDNS + `)`
	tagCIDR = `(?P<cidr>\d+)`
	tagSUB  = `\[?(?:` + tagIP4 + `|` + tagIP6 + `)(?:/` + tagCIDR + `)?\]?`
)

// reIP6RE2 is reIP6 without its lookbehind. Every iteration of the leading
// repetition ends with ':' and it must iterate at least once, so the
// character before the final group is always ':' and `(?<=:):` is exactly
// `:` in this position.
const reIP6RE2 = `(?:[0-9a-fA-F]{1,4}::?|:){1,7}(?:[0-9a-fA-F]{1,4}|:)`

// staticTags maps a tag's inner text to its fixed replacement.
var staticTags = map[string]string{
	"IP4": tagIP4, "F-IP4/": tagIP4,
	"IP6": tagIP6, "F-IP6/": tagIP6,
	"ADDR": tagADDR, "F-ADDR/": tagADDR,
	"CIDR": tagCIDR, "F-CIDR/": tagCIDR,
	"SUBNET": tagSUB, "F-SUBNET/": tagSUB,
	"DNS": tagDNS, "F-DNS/": tagDNS,
	"F-ID/":   `(?P<fid>\S+)`,
	"F-PORT/": `(?P<fport>\w+)`,
}

// groupAlias maps the lower-cased name of an <F-NAME> tag to the group name
// fail2ban gives it when it differs.
var groupAlias = map[string]string{"id": "fid", "port": "fport"}

var (
	// tagRE finds anything shaped like a tag: <X>, </X>, <X/>.
	tagRE = regexp.MustCompile(`</?[\p{L}\p{N}_\-]+/?>`)
	// customRE recognises <F-NAME> and </F-NAME> (upper case only, as in
	// fail2ban).
	customRE = regexp.MustCompile(`^(/?)F-([A-Z0-9_\-]+)$`)
)

// Options change how a pattern is expanded and compiled. The zero value is
// fail2ban's default: usedns = yes, single-line matching.
type Options struct {
	// NoDNS is fail2ban's usedns = no: <HOST> then expands like <ADDR> and
	// has no dns group.
	NoDNS bool
	// Multiline compiles with Python's re.MULTILINE, as fail2ban does when a
	// filter's maxlines is above 1.
	Multiline bool
}

// ExpandTags replaces fail2ban's regex tags in pattern with the regex text
// fail2ban substitutes, and rewrites global inline flags wrapped in a group
// (`((?i)x)`, `(?:(?i)x)`) into local ones (`(?i:x)`) as fail2ban does. The
// result is still a Python regex. Tags it does not know (such as [Init]
// tags a later layer resolves) are left as they are.
//
// <F-NAME>...</F-NAME> becomes the named group `name` (lower case, with
// F-ID → fid and F-PORT → fport); a closing tag whose opening tag was not
// seen before it is left literal. Each <SKIPLINES> becomes a lazy run of
// whole lines captured as skiplines0, skiplines1, ...
func ExpandTags(pattern string, opts Options) string {
	open := map[string]bool{}
	skip := 0
	out := tagRE.ReplaceAllStringFunc(pattern, func(tag string) string {
		name := tag[1 : len(tag)-1]
		switch name {
		case "HOST":
			if opts.NoDNS {
				return tagADDR
			}
			return tagHOST
		case "SKIPLINES":
			s := `\n(?P<skiplines` + strconv.Itoa(skip) + `>(?:(?:.*\n)*?))`
			skip++
			return s
		}
		if r, ok := staticTags[name]; ok {
			return r
		}
		m := customRE.FindStringSubmatch(name)
		if m == nil {
			return tag
		}
		if m[1] != "" { // closing tag
			if open[m[2]] {
				return ")"
			}
			return tag
		}
		open[m[2]] = true
		g := strings.ToLower(m[2])
		if a, ok := groupAlias[g]; ok {
			g = a
		}
		return "(?P<" + g + ">"
	})
	return globalToLocalFlags(out)
}

// globalToLocalFlags rewrites `((?flags)` and `(?:(?flags)` (the opening
// parenthesis not escaped) into `(?flags:`.
func globalToLocalFlags(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if s[i] == '(' && (i == 0 || s[i-1] != '\\') {
			j := i + 1
			if strings.HasPrefix(s[j:], "?:") {
				j += 2
			}
			if strings.HasPrefix(s[j:], "(?") {
				k := j + 2
				for k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
					k++
				}
				if k > j+2 && k < len(s) && s[k] == ')' {
					b.WriteString(s[j:k])
					b.WriteByte(':')
					i = k + 1
					continue
				}
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

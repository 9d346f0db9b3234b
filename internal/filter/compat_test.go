package filter

import (
	"fmt"
	"testing"
)

// initTags returns the tags of s that ExpandTags leaves as they are
// ([Init] tags such as <USER> that a later layer resolves). Group names
// such as (?P<user> are not tags.
func initTags(s string) []string {
	var out []string
	for _, loc := range tagRE.FindAllStringIndex(s, -1) {
		if loc[0] >= 2 && (s[loc[0]-2:loc[0]] == "?P" || s[loc[0]-1] == '?') {
			continue
		}
		tag := s[loc[0]:loc[1]]
		if ExpandTags(tag, Options{}) == tag && !customRE.MatchString(tag[1:len(tag)-1]) {
			out = append(out, tag)
		}
	}
	return out
}

func entryName(e compatEntry) string {
	return fmt.Sprintf("%s%v/%s%d", e.Filter, e.Options, e.Kind, e.Index)
}

// TestExpandTagsCompat checks ExpandTags against fail2ban's own expansion
// of every regex of every shipped filter.
func TestExpandTagsCompat(t *testing.T) {
	es := loadCompat(t)
	equal, skipped := 0, 0
	for _, e := range es {
		got := ExpandTags(e.Source, Options{})
		if got == e.Expanded {
			equal++
			continue
		}
		if tags := initTags(e.Source); len(tags) > 0 {
			skipped++
			t.Logf("skip %s: [Init] tags %v left for the later layer", entryName(e), tags)
			continue
		}
		t.Errorf("%s:\n got %q\nwant %q", entryName(e), got, e.Expanded)
	}
	t.Logf("expanded equal to fail2ban: %d of %d; skipped ([Init] tags): %d", equal, len(es), skipped)
}

// TestCompileCompat compiles every regex of every shipped filter and checks
// that exactly the ones with Python-only features fall back to regexp2.
func TestCompileCompat(t *testing.T) {
	es := loadCompat(t)
	engines := map[string]int{}
	withInit := 0
	for _, e := range es {
		if len(initTags(e.Source)) > 0 {
			withInit++ // compiled all the same: the tag text is literal
		}
		r, err := Compile(e.Source)
		if err != nil {
			t.Errorf("%s: %v", entryName(e), err)
			continue
		}
		engines[r.Engine()]++
		wantRE2 := len(e.PyOnlyAfter) == 0
		if (r.Engine() == "re2") != wantRE2 {
			t.Errorf("%s: engine %s (fallback %q), python-only features after IPv6 fix %v",
				entryName(e), r.Engine(), r.Fallback(), e.PyOnlyAfter)
		}
	}
	t.Logf("compiled %d: re2 %d, regexp2 %d (%d hold tags fail2ban leaves literal, e.g. haproxy-http-auth's <NOSRV>)",
		len(es), engines["re2"], engines["regexp2"], withInit)
}

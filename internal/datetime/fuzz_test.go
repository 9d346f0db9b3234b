package datetime

import (
	"testing"
	"time"
)

// FuzzFind checks that the detectors never panic and that a date they find
// lies within the line.
func FuzzFind(f *testing.F) {
	for _, l := range benchLines {
		f.Add(l, "")
	}
	f.Add("1124013600.123 x", "EPOCH")
	f.Add("@4000000042ff2b201234abcd x", "TAI64N")
	f.Add("<38>1 2019-07-08T17:40:16.954167-04:00 host", `^<\d+>\d+\s+{DATE}`)
	f.Add("2005/01/23 10:00:00", `%Y(?P<_sep>[-/.])%m(?P=_sep)%d %H:%M:%S`)
	f.Add("PDT Apr 16 21:05:29 x", "{^LN-BEG}")
	opts := Options{Location: time.UTC, Now: func() time.Time { return time.Unix(1124013600, 0) }}
	// The default detector is built once (31 regexes) and reused: its
	// state only orders the templates, and a fuzz worker calls sequentially.
	def := NewDefault(opts)
	f.Fuzz(func(t *testing.T, line, pattern string) {
		d := def
		if pattern != "" {
			var err error
			if d, err = New(pattern, opts); err != nil {
				return
			}
		}
		for range 2 { // the second call takes the promoted template's path
			_, start, end, ok := d.Find(line)
			if ok && (start < 0 || end < start || end > len(line)) {
				t.Fatalf("Find(%q) with %q: span [%d:%d] outside the line", line, pattern, start, end)
			}
		}
	})
}

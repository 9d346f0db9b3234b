package datetime

import (
	"errors"
	"testing"
	"time"
)

func TestFind(t *testing.T) {
	opts := testOptions(t)
	loc := opts.Location
	at := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, loc)
	}
	zone := func(off int) *time.Location { return time.FixedZone("", off) }
	tests := []struct {
		name       string
		pattern    string // "" for the default detector
		line       string
		want       time.Time
		start, end int
		notFound   bool
	}{
		{name: "Y m d H M S", pattern: "%Y-%m-%d %H:%M:%S", line: "2005-01-23 21:59:59 host",
			want: at(2005, 1, 23, 21, 59, 59, 0), start: 0, end: 19},
		{name: "y two digits", pattern: "%y/%m/%d %H:%M:%S", line: "x 05/01/23 21:59:59", want: at(2005, 1, 23, 21, 59, 59, 0), start: 2, end: 19},
		{name: "b without year, past", pattern: "%b %d %H:%M:%S", line: "Jan 23 21:59:59 host", want: at(2005, 1, 23, 21, 59, 59, 0), end: 15},
		{name: "b without year, within a day", pattern: "%b %d %H:%M:%S", line: "Aug 15 11:00:00", want: at(2005, 8, 15, 11, 0, 0, 0), end: 15},
		{name: "b without year, future is last year", pattern: "%b %d %H:%M:%S", line: "Aug 15 13:00:00", want: at(2004, 8, 15, 13, 0, 0, 0), end: 15},
		{name: "b case-insensitive", pattern: "%b %d %H:%M:%S", line: "JAN 23 21:59:59", want: at(2005, 1, 23, 21, 59, 59, 0), end: 15},
		{name: "B full month and A", pattern: "%A, %B %d %Y %H:%M:%S", line: "Sunday, January 23 2005 21:59:59", want: at(2005, 1, 23, 21, 59, 59, 0), end: 32},
		{name: "I p AM midnight", pattern: "%b %d, %Y %I:%M:%S %p", line: "Jan 23, 2005 12:05:00 AM", want: at(2005, 1, 23, 0, 5, 0, 0), end: 24},
		{name: "I p PM noon", pattern: "%b %d, %Y %I:%M:%S %p", line: "Jan 23, 2005 12:05:00 PM", want: at(2005, 1, 23, 12, 5, 0, 0), end: 24},
		{name: "I p PM", pattern: "%b %d, %Y %I:%M:%S %p", line: "Jan 23, 2005 1:05:00 pm", want: at(2005, 1, 23, 13, 5, 0, 0), end: 23},
		{name: "f kept", pattern: "%Y-%m-%d %H:%M:%S.%f", line: "2005-01-23 21:59:59.012 x", want: at(2005, 1, 23, 21, 59, 59, 12000000), end: 23},
		{name: "z +hhmm", pattern: "%Y-%m-%d %H:%M:%S %z", line: "2005-01-23 21:59:59 +0200", want: time.Date(2005, 1, 23, 21, 59, 59, 0, zone(7200)), end: 25},
		{name: "z -hh:mm", pattern: "%Y-%m-%d %H:%M:%S %z", line: "2005-01-23 21:59:59 -04:30", want: time.Date(2005, 1, 23, 21, 59, 59, 0, zone(-16200)), end: 26},
		{name: "z +hh", pattern: "%Y-%m-%d %H:%M:%S %z", line: "2005-01-23 21:59:59 +05", want: time.Date(2005, 1, 23, 21, 59, 59, 0, zone(18000)), end: 23},
		{name: "z UTC", pattern: "%Y-%m-%d %H:%M:%S %z", line: "2005-01-23 21:59:59 UTC", want: time.Date(2005, 1, 23, 21, 59, 59, 0, time.UTC), end: 23},
		{name: "z Z", pattern: "%Y-%m-%dT%H:%M:%S%z", line: "2005-01-23T21:59:59Z", want: time.Date(2005, 1, 23, 21, 59, 59, 0, time.UTC), end: 20},
		{name: "Z abbreviation", pattern: "%Z %Y-%m-%d %H:%M:%S", line: "PDT 2005-01-23 21:59:59", want: time.Date(2005, 1, 23, 21, 59, 59, 0, zone(-7*3600)), end: 23},
		{name: "Z unknown abbreviation", pattern: "%Z %Y-%m-%d %H:%M:%S", line: "ABC 2005-01-23 21:59:59", notFound: true},
		{name: "Exz abbreviation with offset", pattern: "%Y-%m-%d %H:%M:%S %Exz", line: "2005-01-23 21:59:59 CET+01", want: time.Date(2005, 1, 23, 21, 59, 59, 0, zone(7200)), end: 26},
		{name: "j day of year", pattern: "%Y %j %H:%M:%S", line: "2005 032 10:00:00", want: at(2005, 2, 1, 10, 0, 0, 0), end: 17},
		{name: "time only, earlier today", pattern: "{^LN-BEG}%H:%M:%S", line: "11:00:00 x", want: at(2005, 8, 14, 11, 0, 0, 0), end: 8},
		{name: "time only, later is yesterday", pattern: "{^LN-BEG}%H:%M:%S", line: "13:00:00 x", want: at(2005, 8, 13, 13, 0, 0, 0), end: 8},
		{name: "k space-padded hour", pattern: "%b %d %k:%M:%S", line: "Jan  3  1:02:03", want: at(2005, 1, 3, 1, 2, 3, 0), end: 15},
		{name: "Ex exact two digits", pattern: "%ExY%Exm%Exd %ExH%ExM%ExS", line: "20050123 215959", want: at(2005, 1, 23, 21, 59, 59, 0), end: 15},
		{name: "Exy", pattern: "%Exy%Exm%Exd %H:%M:%S", line: "050123 21:59:59", want: at(2005, 1, 23, 21, 59, 59, 0), end: 15},
		{name: "percent literal", pattern: "%%%Y-%m-%d %H:%M:%S", line: "x %2005-01-23 21:59:59", want: at(2005, 1, 23, 21, 59, 59, 0), start: 2, end: 22},
		{name: "31 February", pattern: "%Y-%m-%d %H:%M:%S", line: "2005-02-31 10:00:00", notFound: true},
		{name: "29 February not leap", pattern: "%Y-%m-%d %H:%M:%S", line: "2005-02-29 10:00:00", notFound: true},
		{name: "29 February leap", pattern: "%Y-%m-%d %H:%M:%S", line: "2004-02-29 10:00:00", want: at(2004, 2, 29, 10, 0, 0, 0), end: 19},
		{name: "second 60", pattern: "%Y-%m-%d %H:%M:%S", line: "2005-02-03 10:00:60", notFound: true},
		{name: "word boundary at begin", pattern: "%Y-%m-%d %H:%M:%S", line: "ab2005-01-23 10:00:00", notFound: true},
		{name: "word boundary at end", pattern: "%Y-%m-%d %H:%M", line: "2005-01-23 10:00x", notFound: true},
		{name: "UNB no boundaries", pattern: "{UNB}%Y-%m-%d %H:%M:%S", line: "ab2005-01-23 10:00:00", want: at(2005, 1, 23, 10, 0, 0, 0), start: 2, end: 21},
		{name: "LN-BEG after brackets", pattern: "{^LN-BEG}%Y-%m-%d %H:%M:%S", line: "[2005-01-23 10:00:00] x", want: at(2005, 1, 23, 10, 0, 0, 0), start: 1, end: 20},
		{name: "LN-BEG not in the middle", pattern: "{^LN-BEG}%Y-%m-%d %H:%M:%S", line: "host 2005-01-23 10:00:00", notFound: true},
		{name: "caret anchored", pattern: "^%Y-%m-%d %H:%M:%S", line: "x 2005-01-23 10:00:00", notFound: true},
		{name: "regex with group", pattern: `^[^\[]*\[(%d/%b/%Y:%H:%M:%S)`, line: `1.2.3.4 - - [23/Jan/2005:10:00:00 +0100] "GET"`, want: at(2005, 1, 23, 10, 0, 0, 0), start: 13, end: 33},
		{name: "back-reference", pattern: `%Y(?P<_sep>[-/.])%m(?P=_sep)%d %H:%M:%S`, line: "2005/01/23 10:00:00", want: at(2005, 1, 23, 10, 0, 0, 0), end: 19},
		{name: "back-reference mismatch", pattern: `%Y(?P<_sep>[-/.])%m(?P=_sep)%d %H:%M:%S`, line: "2005/01-23 10:00:00", notFound: true},
		{name: "DATE in regex", pattern: `^<\d+>\d+\s+{DATE}`, line: "<38>1 2019-07-08T17:40:16.954167-04:00 host sshd", want: time.Date(2019, 7, 8, 17, 40, 16, 954167000, zone(-4*3600)), start: 0, end: 38},
		{name: "EPOCH", pattern: "EPOCH", line: "1124013600 foo", want: time.Unix(1124013600, 0), end: 10},
		{name: "EPOCH fraction", pattern: "EPOCH", line: "1124013600.250 foo", want: time.Unix(1124013600, 250000000), end: 14},
		{name: "EPOCH in brackets", pattern: "EPOCH", line: "[1124013600] foo", want: time.Unix(1124013600, 0), start: 1, end: 11},
		{name: "EPOCH selinux", pattern: "EPOCH", line: "type=USER_LOGIN msg=audit(1124013600.123:42): x", want: time.Unix(1124013600, 123000000), start: 26, end: 40},
		{name: "EPOCH not mid-line", pattern: "EPOCH", line: "x 1124013600 foo", notFound: true},
		{name: "LN-BEG EPOCH", pattern: "{^LN-BEG}EPOCH", line: "@ 1124013600 foo", want: time.Unix(1124013600, 0), start: 2, end: 12},
		{name: "LEPOCH milliseconds", pattern: "LEPOCH", line: "1124013600123 foo", want: time.Unix(1124013600, 123000000), end: 13},
		{name: "LEPOCH microseconds", pattern: "LEPOCH", line: "1124013600123456 foo", want: time.Unix(1124013600, 123456000), end: 16},
		{name: "EPOCH placeholder", pattern: `time={EPOCH}`, line: "a time=1124013600 b", want: time.Unix(1124013600, 0), start: 7, end: 17},
		{name: "TAI64N", pattern: "TAI64N", line: "@4000000042ff2b201234abcd x", want: time.Unix(0x42ff2b20-10+10, 0), start: 0, end: 25},
		{name: "NONE", pattern: "{NONE}", line: "no date 2005-01-23 10:00:00", want: time.Unix(1124013600, 0), end: 0},
		{name: "default syslog", line: "Jan 23 21:59:59 host sshd[1]: x", want: at(2005, 1, 23, 21, 59, 59, 0), end: 15},
		{name: "default nginx", line: `192.0.2.1 - - [14/Aug/2005:11:59:59 +0200] "GET / HTTP/1.1" 401`, want: time.Date(2005, 8, 14, 11, 59, 59, 0, zone(7200)), start: 15, end: 41},
		{name: "default ISO", line: "2005-08-14T11:59:59.5+02:00 host", want: time.Date(2005, 8, 14, 11, 59, 59, 500000000, zone(7200)), end: 27},
		{name: "default none", line: "no date here", notFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d *Detector
			if tt.pattern == "" {
				d = NewDefault(opts)
			} else {
				var err error
				if d, err = New(tt.pattern, opts); err != nil {
					t.Fatal(err)
				}
			}
			got, start, end, ok := d.Find(tt.line)
			if tt.notFound {
				if ok {
					t.Fatalf("Find(%q) = %v, %d, %d, want no date", tt.line, got, start, end)
				}
				return
			}
			if !ok {
				t.Fatalf("Find(%q): no date, want %v", tt.line, tt.want)
			}
			if !got.Equal(tt.want) || start != tt.start || end != tt.end {
				t.Errorf("Find(%q) = %v [%d:%d], want %v [%d:%d]", tt.line, got, start, end, tt.want, tt.start, tt.end)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	opts := testOptions(t)
	for _, p := range []string{`(?<=x)%H:%M:%S`, `%H:%M:%S(?!x)`, `(%H`, "%H:%M:%S\n%H:%M:%S"} {
		if _, err := New(p, opts); err == nil {
			t.Errorf("New(%q) = nil error", p)
		}
	}
	_, err := New(`(?<=x)%H:%M:%S`, opts)
	if !errors.Is(err, errUnsupported) {
		t.Errorf("New(look-behind) = %v, want errUnsupported", err)
	}
}

func TestPromotion(t *testing.T) {
	d := NewDefault(testOptions(t))
	before := d.Templates()
	for range 3 {
		if _, _, _, ok := d.Find("Jan 23 21:59:59 host sshd[1]: x"); !ok {
			t.Fatal("no date")
		}
	}
	after := d.Templates()
	if after[0] != "{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\\.Microseconds)?(?: ExYear)?" {
		t.Errorf("first template after syslog lines = %q (before %q)", after[0], before[:2])
	}
	// a different form still works, and moves up in turn
	if _, _, _, ok := d.Find("2005-01-23 21:59:59 host"); !ok {
		t.Fatal("no date")
	}
}

func TestZoneOffset(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"UTC", 0, false}, {"CET", time.Hour, false}, {"CEST+01", 3 * time.Hour, false},
		{"-0430", -(4*time.Hour + 30*time.Minute), false}, {"+05:45", 5*time.Hour + 45*time.Minute, false},
		{"NPT", 5*time.Hour + 45*time.Minute, false}, {"PT", 0, true}, {"ABC", 0, true}, {"+2", 0, true},
	} {
		got, err := ZoneOffset(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ZoneOffset(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestUnicode(t *testing.T) {
	opts := testOptions(t)
	d, err := New("%Y-%m-%d %H:%M:%S", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Python's \d matches Arabic-Indic digits and int() reads them
	got, _, _, ok := d.Find("x ٢٠٠٥-01-23 10:00:00")
	if want := time.Date(2005, 1, 23, 10, 0, 0, 0, opts.Location); !ok || !got.Equal(want) {
		t.Errorf("Arabic-Indic year: got %v, %v; want %v", got, ok, want)
	}
	// é is a word character for Python: the line-begin prefix does not skip it
	d2, err := New("{^LN-BEG}%Y-%m-%d %H:%M:%S", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := d2.Find("é 2005-01-23 10:00:00"); ok {
		t.Error("{^LN-BEG} skipped a letter")
	}
	if _, _, _, ok := d2.Find("« 2005-01-23 10:00:00"); !ok {
		t.Error("{^LN-BEG} did not skip « and a space")
	}
}

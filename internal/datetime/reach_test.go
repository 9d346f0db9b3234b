package datetime

import "testing"

func TestReach(t *testing.T) {
	tests := []struct {
		pattern    string
		start, end int
		lead       map[string]int // line -> Lead(line)
	}{
		// fail2ban's default templates include unanchored ones: a date may
		// be anywhere.
		{pattern: "", start: -1, end: -1, lead: map[string]int{"x Jan 1 10:00:00": 16}},
		{pattern: "{NONE}", start: 0, end: 0, lead: map[string]int{"Jan  1 10:00:00 x": 0}},
		// {^LN-BEG}: up to two non-word characters (4 bytes each at most)
		// before the date; one template ends in \s*, so no end bound.
		{pattern: "{^LN-BEG}", start: 8, end: -1, lead: map[string]int{
			"Nov  5 10:00:01 host sshd[1]: x": 0,
			"  Nov  5 10:00:01":               2,
			"[2024-01-01 10:00:00]":           1,
			"[[[[[[[[[[":                      8,
			"":                                0,
		}},
		// Widths count 4 bytes for a digit: \d is any Unicode digit.
		{pattern: "^%Y-%m-%d %H:%M:%S", start: 0, end: 43, lead: map[string]int{"[2024-01-01 10:00:00": 0}},
		{pattern: "{^LN-BEG}EPOCH", start: 8, end: 77, lead: map[string]int{"@1700000000": 1}},
		{pattern: "EPOCH", start: -1, end: -1},
		{pattern: "{^LN-BEG}%Y-%m-%d %H:%M:%S\n%d/%b/%Y:%H:%M:%S", start: -1, end: -1},
		// Without a group of its own, the whole pattern is the date.
		{pattern: `^<\d+>\s*{DATE}`, start: 0, end: -1},
	}
	for _, tt := range tests {
		d, err := New(tt.pattern, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		r := d.Reach()
		if r.Start != tt.start || r.End != tt.end {
			t.Errorf("%q: Reach = %d, %d; want %d, %d", tt.pattern, r.Start, r.End, tt.start, tt.end)
		}
		for line, want := range tt.lead {
			if got := r.Lead(line); got != want {
				t.Errorf("%q: Lead(%q) = %d, want %d", tt.pattern, line, got, want)
			}
		}
	}
}

// TestReachHolds checks Reach against what Detect finds: every date lies
// within it.
func TestReachHolds(t *testing.T) {
	lines := []string{
		"Nov  5 10:00:01 host sshd[1]: x",
		"  Nov  5 10:00:01 host",
		"[2024-01-01 10:00:00] x",
		"2024-01-01T10:00:00.123456+02:00 x",
		"20240101 10:00:00 x",
		"@4000000063f1c6a62a5b1c3c x",
		"1700000000.123 x",
		"[1700000000] x",
		"<12/31/24@23:59:59> x",
		"Jan-31-24 10:00:00 x",
		"\u00a0\u00a0Nov  5 10:00:01 x",
		"Mon Nov  5 10:00:01 2024 x",
		"CET Nov  5 10:00:01 x",
		"+0100 Nov  5 10:00:01 x",
		"<12> Nov  5 10:00:01 x",
	}
	checked := 0
	for _, pattern := range []string{"", "{^LN-BEG}", "{^LN-BEG}EPOCH", "{^LN-BEG}TAI64N", "^%Y-%m-%d %H:%M:%S", `^<\d+>\s*{DATE}`} {
		d, err := New(pattern, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := d.Reach()
		for _, line := range lines {
			res := d.Detect(line)
			if res.Status == NotFound {
				continue
			}
			checked++
			if r.Start >= 0 && res.Start > r.Lead(line) {
				t.Errorf("%q: %q: date at %d, after Lead %d", pattern, line, res.Start, r.Lead(line))
			}
			if r.End >= 0 && res.End > r.End {
				t.Errorf("%q: %q: date ends at %d, after End %d", pattern, line, res.End, r.End)
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d dates found", checked)
	}
}

package config

import "testing"

// TestSeconds checks Seconds against fail2ban 1.0.2's MyTime.str2seconds
// (the wanted values were printed by it).
func TestSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"600", 600}, {"10m", 600}, {"1d12h", 129600}, {"1h 30m", 5400}, {"1hour+30min", 5400},
		{"2*60*60", 7200}, {"-1", -1}, {"1w", 604800}, {"1mo", 2629800}, {"1y", 31557600},
		{"1d 2h 3m 4s", 93784}, {"1.5h", 5400}, {"5 min", 300}, {"3 days", 259200}, {"1D", 86400},
		{"10M", 600}, {"1mon", 2629800}, {"(1h+1m)*2", 7320}, {"1h30m", 5400}, {"90s", 90},
		{"2ww", 1209600}, {"1 year 2 months", 36817200}, {"10mm", 600}, {"1dd", 86400},
		{" 10m ", 600},
	}
	for _, tt := range tests {
		got, err := Seconds(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Seconds(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "10x", "1h+", "(1h", "1/0", "abc", "1h)"} {
		if v, err := Seconds(bad); err == nil {
			t.Errorf("Seconds(%q) = %v, want an error", bad, v)
		}
	}
}

func FuzzSeconds(f *testing.F) {
	for _, s := range []string{"10m", "1d12h", "(1h+1m)*2", "-1", "1 year 2 months"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		Seconds(s) // must not panic or hang
	})
}

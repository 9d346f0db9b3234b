package jail

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFailuresCount checks the counts against fail2ban 1.0.2's fail
// manager (findtime 600 s): the wanted counts were printed by it for the
// same failure times.
func TestFailuresCount(t *testing.T) {
	tests := []struct {
		name  string
		times []int // seconds
		want  []int
	}{
		{"burst", []int{0, 10, 20, 30, 40}, []int{1, 2, 3, 4, 5}},
		{"slow", []int{0, 300, 600, 900, 1200, 1500, 1800}, []int{1, 2, 3, 3, 3, 3, 3}},
		{"steady", []int{0, 200, 400, 600, 800, 1000, 1200, 1400}, []int{1, 2, 3, 4, 4, 4, 4, 4}},
		{"gap", []int{0, 100, 5000, 5001, 5002}, []int{1, 2, 1, 2, 3}},
		{"rescale to half", []int{0, 500, 1000, 1100, 1150}, []int{1, 2, 2, 3, 4}},
		{"halves round to even", []int{0, 1000, 1300, 1301}, []int{1, 2, 2, 3}},
		{"out of order", []int{100, 50, 120, 700}, []int{1, 2, 3, 4}},
	}
	base := time.Unix(1_700_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFailures(3, 600*time.Second, 0)
			var got []int
			for _, s := range tt.times {
				got = append(got, f.Add("192.0.2.1", base.Add(time.Duration(s)*time.Second), 1, nil))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("counts %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFailuresBanAndCleanup(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	f := NewFailures(3, 10*time.Minute, 2)
	for i, line := range []string{"a", "b", "c"} {
		f.Add("192.0.2.1", base.Add(time.Duration(i)*time.Second), 1, []string{line})
		if _, ok := f.ToBan("192.0.2.1"); ok != (i == 2) {
			t.Fatalf("after %d failures: ToBan %v", i+1, ok)
		}
	}
	f.Add("192.0.2.2", base, 1, []string{"x"})
	f.Add("192.0.2.3", base.Add(5*time.Minute), Boost(3, 3), []string{"y"})
	e, ok := f.ToBan("192.0.2.3")
	if !ok || e.Retry != 3 || len(e.Matches) != 1 {
		t.Fatalf("boosted: %+v %v", e, ok)
	}
	f.Cleanup(base.Add(10 * time.Minute))
	if f.Len() != 0 {
		t.Fatalf("%d ids left after cleanup", f.Len())
	}
	f.Add("192.0.2.4", base, 1, []string{"1", "2", "3"})
	f.Add("192.0.2.4", base, 1, []string{"4"})
	if e := f.byID["192.0.2.4"]; strings.Join(e.Matches, "") != "34" || e.Attempts != 2 {
		t.Fatalf("matches %v attempts %d", e.Matches, e.Attempts)
	}
}

func TestBoost(t *testing.T) {
	for _, tt := range []struct{ bans, maxRetry, want int }{
		{0, 5, 1}, {1, 5, 2}, {2, 5, 3}, {3, 5, 5}, {4, 5, 5}, {4, 20, 9}, {40, 1 << 30, 1<<19 + 1},
	} {
		if got := Boost(tt.bans, tt.maxRetry); got != tt.want {
			t.Errorf("Boost(%d, %d) = %d, want %d", tt.bans, tt.maxRetry, got, tt.want)
		}
	}
}

// TestBanTime checks the increments against fail2ban 1.0.2's
// calcBanTime (the wanted values were printed by it, bantime 600 s).
func TestBanTime(t *testing.T) {
	tests := []struct {
		name  string
		opts  map[string]string
		count int
		want  float64 // seconds
	}{
		{"off", map[string]string{}, 3, 600},
		{"default 1", map[string]string{"bantime.increment": "true"}, 1, 1200},
		{"default 3", map[string]string{"bantime.increment": "true"}, 3, 4800},
		{"default 5", map[string]string{"bantime.increment": "true"}, 5, 19200},
		{"first ban", map[string]string{"bantime.increment": "true"}, 0, 600},
		{"exp 1", map[string]string{"bantime.increment": "true", "bantime.factor": "2",
			"bantime.formula": "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"}, 1, 4433.433659358389},
		{"exp 3", map[string]string{"bantime.increment": "true", "bantime.factor": "2",
			"bantime.formula": "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"}, 3, 242057.27609564108},
		{"multipliers", map[string]string{"bantime.increment": "true", "bantime.factor": "2", "bantime.multipliers": "1 5 30 60 300 720 1440 2880", "bantime.maxtime": "1w"}, 1, 6000},
		{"multipliers 2", map[string]string{"bantime.increment": "true", "bantime.factor": "2", "bantime.multipliers": "1 5 30 60 300 720 1440 2880", "bantime.maxtime": "1w"}, 2, 36000},
		{"maxtime", map[string]string{"bantime.increment": "true", "bantime.factor": "2", "bantime.multipliers": "1 5 30 60 300 720 1440 2880", "bantime.maxtime": "1w"}, 9, 604800},
		{"rndtime", map[string]string{"bantime.increment": "true", "bantime.rndtime": "10m"}, 1, 1200 + 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, err := ParseIncrement(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := inc.BanTime(600*time.Second, tt.count, func() float64 { return 0.5 }).Seconds()
			if math.Abs(got-tt.want) > 1e-6 {
				t.Fatalf("BanTime = %v s, want %v", got, tt.want)
			}
		})
	}
	if inc, _ := ParseIncrement(map[string]string{"bantime.increment": "true"}); inc.BanTime(-time.Second, 3, nil) != -time.Second {
		t.Fatal("a permanent ban changed")
	}
	for _, bad := range []map[string]string{
		{"bantime.increment": "perhaps"},
		{"bantime.factor": "x"},
		{"bantime.formula": "ban.Time * 3"},
		{"bantime.multipliers": "1 x"},
		{"bantime.maxtime": "soon"},
	} {
		if _, err := ParseIncrement(bad); err == nil {
			t.Errorf("ParseIncrement(%v): no error", bad)
		}
	}
}

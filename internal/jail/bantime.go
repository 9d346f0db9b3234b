package jail

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/edgeban/edgeban/internal/config"
)

// Increment is a jail's bantime.increment family of options: each new ban
// of a repeat offender lasts longer.
type Increment struct {
	Enabled bool
	// Factor multiplies the growth (bantime.factor, default 1).
	Factor float64
	// Exp selects fail2ban's exponential formula, ban.Time *
	// math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor),
	// instead of the default ban.Time * 2**ban.Count * banFactor.
	Exp bool
	// Multipliers, when set, replace the formula: the n-th ban lasts
	// bantime * factor * Multipliers[n] (the last one beyond).
	Multipliers []int
	// MaxTime caps a ban (0: no cap); RndTime adds up to that much at
	// random (0: none).
	MaxTime, RndTime time.Duration
	// OverallJails counts bans in every jail, not only this one.
	OverallJails bool
}

// Formulas fail2ban's jail.conf documents, without spaces.
const (
	formulaDefault = "ban.Time*(1<<(ban.Countifban.Count<20else20))*banFactor"
	formulaExp     = "ban.Time*math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"
)

// ParseIncrement reads the bantime.* options of a jail (as config.Jail
// holds them). fail2ban evaluates bantime.formula as Python; edgeban
// knows the two formulas fail2ban documents and refuses others.
func ParseIncrement(opts map[string]string) (Increment, error) {
	inc := Increment{Factor: 1}
	if v := strings.TrimSpace(opts["bantime.increment"]); v != "" {
		b, err := config.ParseBool(v)
		if err != nil {
			return inc, fmt.Errorf("option \"bantime.increment\": %w", err)
		}
		inc.Enabled = b
	}
	if v := strings.TrimSpace(opts["bantime.factor"]); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return inc, fmt.Errorf("option \"bantime.factor\": %q is not a positive number", v)
		}
		inc.Factor = f
	}
	if v := strings.Join(strings.Fields(opts["bantime.formula"]), ""); v != "" {
		switch v {
		case formulaDefault:
		case formulaExp:
			inc.Exp = true
		default:
			return inc, fmt.Errorf("option \"bantime.formula\": %q is not one of the formulas edgeban knows: %q or %q (use bantime.multipliers for other growths)",
				opts["bantime.formula"], formulaDefault, formulaExp)
		}
	}
	for _, w := range strings.Fields(opts["bantime.multipliers"]) {
		n, err := strconv.Atoi(w)
		if err != nil {
			return inc, fmt.Errorf("option \"bantime.multipliers\": %q is not a whole number", w)
		}
		inc.Multipliers = append(inc.Multipliers, n)
	}
	for _, o := range []struct {
		name string
		dst  *time.Duration
	}{{"bantime.maxtime", &inc.MaxTime}, {"bantime.rndtime", &inc.RndTime}} {
		if v := strings.TrimSpace(opts[o.name]); v != "" {
			s, err := config.Seconds(v)
			if err != nil {
				return inc, fmt.Errorf("option %q: %w", o.name, err)
			}
			*o.dst = time.Duration(s * float64(time.Second))
		}
	}
	if v := strings.TrimSpace(opts["bantime.overalljails"]); v != "" {
		b, err := config.ParseBool(v)
		if err != nil {
			return inc, fmt.Errorf("option \"bantime.overalljails\": %w", err)
		}
		inc.OverallJails = b
	}
	return inc, nil
}

// BanTime is how long a ban lasts when the id was banned banCount times
// before: bantime itself for a first ban, when the increment is off, or
// for a permanent ban (bantime < 0). rnd returns a number in [0, 1) for
// RndTime (nil: none).
func (inc Increment) BanTime(bantime time.Duration, banCount int, rnd func() float64) time.Duration {
	if !inc.Enabled || banCount <= 0 || bantime <= 0 {
		return bantime
	}
	base := bantime.Seconds()
	var s float64
	switch {
	case len(inc.Multipliers) > 0:
		m := inc.Multipliers[len(inc.Multipliers)-1]
		if banCount < len(inc.Multipliers) {
			m = inc.Multipliers[banCount]
		}
		s = base * inc.Factor * float64(m)
	case inc.Exp:
		s = max(base, base*math.Exp(float64(banCount+1)*inc.Factor)/math.Exp(inc.Factor))
	default:
		s = max(base, base*float64(int64(1)<<min(banCount, 20))*inc.Factor)
	}
	if inc.MaxTime > 0 {
		s = min(s, inc.MaxTime.Seconds())
	}
	if inc.RndTime > 0 && rnd != nil {
		s += rnd() * inc.RndTime.Seconds()
	}
	return time.Duration(s * float64(time.Second))
}

package jail

import (
	"math"
	"time"
)

// Failures counts the failures of each id (an address, or a filter's
// F-ID) within findtime, as fail2ban's fail manager does. It is not safe
// for concurrent use: a jail owns one.
type Failures struct {
	maxRetry   int
	maxMatches int
	findTime   time.Duration
	byID       map[string]*Failure
}

// Failure is what is known of one id's recent failures.
type Failure struct {
	ID    string
	First time.Time // start of the counting window
	Last  time.Time // the latest failure
	// Retry is the count compared with maxretry. It is the number of
	// failures, rescaled when they span more than findtime (see Add), and
	// raised for repeat offenders (see Boost).
	Retry int
	// Attempts is the number of failures seen.
	Attempts int
	// Matches holds the last maxmatches log lines of the failures.
	Matches []string
}

// NewFailures returns a counter for a jail's maxretry, findtime and
// maxmatches (0: keep no lines).
func NewFailures(maxRetry int, findTime time.Duration, maxMatches int) *Failures {
	return &Failures{maxRetry: maxRetry, maxMatches: maxMatches, findTime: findTime, byID: map[string]*Failure{}}
}

// Add counts count failures of id at t with their log lines and returns
// the id's count. When the id's failures span more than findtime, the
// count so far is rescaled to the rate it shows over findtime before the
// new ones are added, as fail2ban estimates it: a slow, steady attacker
// is not forgotten at findtime's edge, and an old burst fades.
func (f *Failures) Add(id string, t time.Time, count int, matches []string) int {
	count = max(count, 1)
	e, ok := f.byID[id]
	if !ok {
		e = &Failure{ID: id, First: t, Last: t, Retry: count, Attempts: 1}
		f.byID[id] = e
		e.addMatches(matches, f.maxMatches)
		return e.Retry
	}
	if t.After(e.Last) {
		if window := t.Add(-f.findTime); e.First.Before(window) {
			// Python's round(): halves to even.
			span := t.Sub(e.First).Seconds()
			e.Retry = int(math.RoundToEven(float64(e.Retry) / span * f.findTime.Seconds()))
			e.First = window
		}
		e.Last = t
	}
	e.Retry += count
	e.Attempts++
	e.addMatches(matches, f.maxMatches)
	return e.Retry
}

func (e *Failure) addMatches(m []string, maxMatches int) {
	if maxMatches <= 0 {
		e.Matches = nil
		return
	}
	e.Matches = append(e.Matches, m...)
	if n := len(e.Matches); n > maxMatches {
		e.Matches = append([]string(nil), e.Matches[n-maxMatches:]...)
	}
}

// ToBan removes and returns id's failures when they have reached
// maxretry.
func (f *Failures) ToBan(id string) (*Failure, bool) {
	e, ok := f.byID[id]
	if !ok || e.Retry < f.maxRetry {
		return nil, false
	}
	delete(f.byID, id)
	return e, true
}

// Forget drops id's failures (after a ban by hand, say).
func (f *Failures) Forget(id string) { delete(f.byID, id) }

// Cleanup drops the ids whose latest failure is findtime or more before
// now.
func (f *Failures) Cleanup(now time.Time) {
	limit := now.Add(-f.findTime)
	for id, e := range f.byID {
		if !e.Last.After(limit) {
			delete(f.byID, id)
		}
	}
}

// Len is the number of ids with failures.
func (f *Failures) Len() int { return len(f.byID) }

// Boost is the count one failure of a repeat offender weighs, banned
// banCount times before, as fail2ban's bantime.increment counts it: 2,
// 3, 5, 9... for 1, 2, 3, 4 earlier bans, at most maxretry. A first
// offender's failure weighs 1.
func Boost(banCount, maxRetry int) int {
	if banCount <= 0 {
		return 1
	}
	return min((1<<min(banCount, 20))/2+1, max(maxRetry, 1))
}

package jail

import (
	"sync"
	"sync/atomic"
)

// Counters count what a jail has done, for the daemon's metrics. They
// only grow. A jail restarted by a reload takes over the counters of the
// jail it replaces (Settings.Counters), so that they cover the life of
// the process, as a Prometheus counter should. The zero value is ready to
// use; a Counters is safe for concurrent use.
//
// The line counters sit on the jail's hot path: each costs one atomic
// add per line.
type Counters struct {
	linesRead    atomic.Int64
	linesMatched atomic.Int64
	failures     atomic.Int64
	ignored      atomic.Int64
	bans         atomic.Int64

	mu      sync.Mutex
	actions map[string]*actionCounters // by action name
}

// actionCounters count the runs of one action of a jail.
type actionCounters struct {
	bans, banErrors, unbans, unbanErrors atomic.Int64
}

// action returns the counters of the action named name, made on first
// use.
func (c *Counters) action(name string) *actionCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.actions == nil {
		c.actions = map[string]*actionCounters{}
	}
	a := c.actions[name]
	if a == nil {
		a = &actionCounters{}
		c.actions[name] = a
	}
	return a
}

// Stats is a snapshot of a jail's counters and of its state, for metrics.
// The counters (the int64 fields) come from its Counters; the rest is the
// jail's state at the time of the snapshot.
type Stats struct {
	Jail string
	// LinesRead counts the lines read from the jail's logs, and
	// LinesMatched those in which the filter found a failure (a failregex
	// matched), as fail2ban-regex counts them.
	LinesRead, LinesMatched int64
	// Failures counts the failures counted towards a ban (fail2ban's
	// "Total failed"), and Ignored those the ignore rules let pass
	// (ignoreip, ignoreself, ignorecommand, Cloudflare's own addresses).
	Failures, Ignored int64
	// Bans counts the bans the jail made, by failures or by hand; bans
	// restored at a start are not new and are not counted.
	Bans int64
	// Active is the number of bans in force.
	Active int
	// Queue is the action work waiting in the jail's background: the
	// restored bans whose actions have not run again yet, and the failed
	// action bans waiting for their retry.
	Queue int
	// Actions holds the counters of the jail's actions, in order.
	Actions []ActionStats
}

// ActionStats counts the runs of one action of a jail: bans (restored
// bans and retries included) and unbans, and those that failed.
type ActionStats struct {
	Name                                 string
	Bans, BanErrors, Unbans, UnbanErrors int64
}

// Stats returns a snapshot of the jail's counters and state.
func (j *Jail) Stats() Stats {
	c := j.counters
	st := Stats{Jail: j.s.Name, LinesRead: c.linesRead.Load(), LinesMatched: c.linesMatched.Load(),
		Failures: c.failures.Load(), Ignored: c.ignored.Load(), Bans: c.bans.Load()}
	j.mu.Lock()
	st.Active = len(j.bans)
	st.Queue = j.pending
	for _, r := range j.retry {
		if j.bans[r.ip] != nil { // else lifted meanwhile: the retry will find nothing to do
			st.Queue++
		}
	}
	j.mu.Unlock()
	for i, a := range j.s.Actions {
		ac := j.actionCounters[i]
		st.Actions = append(st.Actions, ActionStats{Name: a.Name(), Bans: ac.bans.Load(), BanErrors: ac.banErrors.Load(),
			Unbans: ac.unbans.Load(), UnbanErrors: ac.unbanErrors.Load()})
	}
	return st
}

// countAction counts one run of action i: a ban, or an unban.
func (j *Jail) countAction(i int, ban bool, err error) {
	ac := j.actionCounters[i]
	switch {
	case ban && err == nil:
		ac.bans.Add(1)
	case ban:
		ac.banErrors.Add(1)
	case err == nil:
		ac.unbans.Add(1)
	default:
		ac.unbanErrors.Add(1)
	}
}

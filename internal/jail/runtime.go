package jail

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/source"
	"github.com/edgeban/edgeban/internal/store"
)

// Action is what a jail bans with: a shell action, or any other.
type Action interface {
	Name() string
	Start(ctx context.Context) error
	Ban(ctx context.Context, t action.Ticket) error
	Unban(ctx context.Context, t action.Ticket) error
	Stop(ctx context.Context) error
}

// Settings are what a running jail needs.
type Settings struct {
	Name     string
	Filter   *filter.Filter // used by the jail's goroutine only
	LogPaths []string       // files to follow (globs already expanded)
	Poll     bool           // backend = polling
	MaxRetry int
	FindTime time.Duration
	BanTime  time.Duration // < 0: permanent
	// MaxMatches is how many log lines a failure keeps (dbmaxmatches).
	MaxMatches int
	Ignore     *IgnoreRules // nil: none
	// Resolver looks host names up, for usedns and the ignore rules;
	// nil: net.DefaultResolver.
	Resolver Resolver
	// UseDNS is the jail's usedns: "yes", "warn", "no" or "raw" (see
	// ResolveID).
	UseDNS    string
	Increment Increment
	Actions   []Action
	Store     *store.DB
	Log       *slog.Logger
	// OnBan and OnUnban, when set, are told of each ban and unban after
	// the actions ran (the daemon's log target, the CLI's waiters).
	OnBan, OnUnban func(jail, ip string, restored bool)
}

// Ban is one active ban of a jail.
type Ban struct {
	IP       string    `json:"ip"`
	At       time.Time `json:"at"`
	End      time.Time `json:"end,omitzero"` // zero: permanent
	BanCount int       `json:"bancount"`
	Restored bool      `json:"restored,omitempty"`
	// Failed names the actions whose ban has not succeeded yet, with
	// their last error; they are tried again.
	Failed map[string]string `json:"failed,omitempty"`
}

// Jail runs one jail: it follows its logs, counts failures, bans, and
// lifts bans when they end. Its methods are safe for concurrent use.
type Jail struct {
	s     Settings
	ready chan struct{} // closed once Run has restored the bans

	mu       sync.Mutex // guards what follows
	failures *Failures
	bans     map[string]*Ban
	ends     endHeap
	wake     chan struct{} // a ban changed the schedule
	retry    []retryItem
	total    struct{ failed, banned int }
}

type retryItem struct {
	ip     string
	action int
	at     time.Time
	wait   time.Duration
}

// New returns a jail ready to Run.
func New(s Settings) *Jail {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.Log = s.Log.With("jail", s.Name)
	return &Jail{s: s, failures: NewFailures(s.MaxRetry, s.FindTime, s.MaxMatches),
		bans: map[string]*Ban{}, wake: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Name is the jail's name.
func (j *Jail) Name() string { return j.s.Name }

type lineEvent struct {
	path string
	line source.Line
}

// Run starts the actions, restores the jail's bans from the store, and
// follows the logs until ctx ends; it then saves the log positions and
// stops the actions (the bans stay in the store, to be restored).
func (j *Jail) Run(ctx context.Context) error {
	for _, a := range j.s.Actions {
		if err := a.Start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting: not a failure
			}
			return fmt.Errorf("jail %q: start: %w", j.s.Name, err)
		}
	}
	if err := j.restore(ctx); err != nil {
		if ctx.Err() != nil {
			return j.stopActions(ctx)
		}
		return err
	}
	close(j.ready)
	lines := make(chan lineEvent, 256)
	fctx, stopFollow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range j.s.LogPaths {
		opts := source.Options{Poll: j.s.Poll, Logger: j.s.Log}
		if md5, pos, ok, err := j.s.Store.LogPosition(ctx, j.s.Name, p); err != nil {
			stopFollow()
			wg.Wait()
			if ctx.Err() != nil {
				return j.stopActions(ctx)
			}
			return err
		} else if ok {
			opts.Start = &source.Position{FirstLineMD5: md5, Offset: pos}
		}
		wg.Go(func() {
			err := source.Follow(fctx, p, opts, func(l source.Line) error {
				select {
				case lines <- lineEvent{path: p, line: l}:
					return nil
				case <-fctx.Done():
					return fctx.Err()
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				j.s.Log.Error("log source stopped", "path", p, "err", err)
			}
		})
	}
	positions := map[string]source.Position{}
	savePositions := func() {
		for p, pos := range positions {
			if err := j.s.Store.SetLogPosition(context.WithoutCancel(ctx), j.s.Name, p, pos.FirstLineMD5, pos.Offset); err != nil {
				j.s.Log.Error("save log position", "path", p, "err", err)
			}
		}
		clear(positions)
	}
	save := time.NewTicker(time.Second)
	defer save.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(j.nextWake())
		select {
		case <-ctx.Done():
			stopFollow()
			wg.Wait()
			// Lines already read are handled before the positions are saved.
			for {
				select {
				case ev := <-lines:
					j.handleLine(context.WithoutCancel(ctx), ev.line)
					positions[ev.path] = ev.line.Pos
					continue
				default:
				}
				break
			}
			savePositions()
			return j.stopActions(ctx)
		case ev := <-lines:
			j.handleLine(ctx, ev.line)
			positions[ev.path] = ev.line.Pos
		case <-save.C:
			savePositions()
		case <-j.wake:
		case <-timer.C:
		}
		j.unbanDue(ctx)
		j.retryDue(ctx)
	}
}

// stopActions stops the actions in reverse order, as fail2ban does.
func (j *Jail) stopActions(ctx context.Context) error {
	var errs []error
	for i := len(j.s.Actions) - 1; i >= 0; i-- {
		if err := j.s.Actions[i].Stop(context.WithoutCancel(ctx)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// handleLine runs the filter over one line and counts its failures.
func (j *Jail) handleLine(ctx context.Context, l source.Line) {
	res := j.s.Filter.Process(l.Text)
	now := time.Now()
	for _, fl := range res.Failures {
		if fl.NoFail || fl.ID == "" {
			continue
		}
		if fl.Time.Before(now.Add(-j.s.FindTime)) {
			continue // fail2ban ignores failures older than findtime
		}
		if !fl.Resolve {
			j.failure(ctx, fl.ID, fl, now)
			continue
		}
		for _, id := range ResolveID(ctx, j.s.Log, j.s.Resolver, j.s.UseDNS, fl.ID) {
			j.failure(ctx, id, fl, now)
		}
	}
}

// failure counts one failure of id, unless the ignore rules say not to,
// and bans id when it has reached maxretry.
func (j *Jail) failure(ctx context.Context, id string, fl filter.Failure, now time.Time) {
	if ignored, rule := j.s.Ignore.Ignored(ctx, j.s.Log, id, fl.Fields); ignored {
		j.s.Log.Info("ignore", "ip", id, "by", rule)
		return
	}
	j.mu.Lock()
	_, banned := j.bans[id]
	j.total.failed++
	j.mu.Unlock()
	if banned {
		return
	}
	count := 1
	if j.s.Increment.Enabled {
		if rec, ok, err := j.s.Store.LastBan(ctx, id, j.s.Name, j.s.Increment.OverallJails); err == nil && ok {
			count = Boost(rec.BanCount, j.s.MaxRetry)
		}
	}
	j.mu.Lock()
	j.failures.Add(id, fl.Time, count, fl.Matches)
	f, ok := j.failures.ToBan(id)
	j.mu.Unlock()
	if ok {
		t := action.Ticket{IP: id, Failures: f.Attempts, Matches: f.Matches, IPJailMatches: f.Matches, Fields: fl.Fields}
		if err := j.ban(ctx, t, now); err != nil {
			j.s.Log.Error("ban", "ip", id, "err", err)
		}
	}
}

// Ready is closed once Run has restored the jail's bans and follows its
// logs.
func (j *Jail) Ready() <-chan struct{} { return j.ready }

// waitReady waits until Run has restored the jail's bans, so that a
// command does not race the restore.
func (j *Jail) waitReady(ctx context.Context) error {
	select {
	case <-j.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jail %q is not running yet: %w", j.s.Name, ctx.Err())
	}
}

// BanIP bans ip by hand, as fail2ban-client set JAIL banip.
func (j *Jail) BanIP(ctx context.Context, ip string) error {
	if err := j.waitReady(ctx); err != nil {
		return err
	}
	j.mu.Lock()
	j.failures.Forget(ip)
	j.mu.Unlock()
	return j.ban(ctx, action.Ticket{IP: ip, Failures: 1}, time.Now())
}

// ban records a new ban in the store, then runs the actions.
func (j *Jail) ban(ctx context.Context, t action.Ticket, now time.Time) error {
	j.mu.Lock()
	if _, ok := j.bans[t.IP]; ok {
		j.mu.Unlock()
		return fmt.Errorf("%s is already banned in jail %q", t.IP, j.s.Name)
	}
	j.mu.Unlock()
	count := 1
	if rec, ok, err := j.s.Store.LastBan(ctx, t.IP, j.s.Name, j.s.Increment.OverallJails); err != nil {
		return err
	} else if ok && j.s.Increment.Enabled {
		count = rec.BanCount + 1
	}
	bantime := j.s.Increment.BanTime(j.s.BanTime, count-1, nil)
	now = now.Truncate(time.Millisecond) // as the store keeps it: a restart restores the same times
	data, _ := json.Marshal(map[string]any{"failures": t.Failures, "matches": t.Matches})
	rec := store.JailBan{Jail: j.s.Name, IP: t.IP, At: now, BanTime: bantime, BanCount: count, Data: string(data)}
	if err := j.s.Store.AddJailBan(ctx, rec); err != nil {
		return err
	}
	t.Time, t.BanTime, t.BanCount = now, bantime, count
	b := &Ban{IP: t.IP, At: now, End: rec.End(), BanCount: count}
	j.mu.Lock()
	j.bans[t.IP] = b
	j.total.banned++
	if !b.End.IsZero() {
		heap.Push(&j.ends, endItem{ip: t.IP, at: b.End})
	}
	j.mu.Unlock()
	j.apply(ctx, b, t)
	j.poke()
	return nil
}

// noRestored is an action that a restored ban skips (norestored).
type noRestored interface{ NoRestored() bool }

// apply runs every action's ban; a failure is kept for a retry. A
// restored ban skips the actions with norestored.
func (j *Jail) apply(ctx context.Context, b *Ban, t action.Ticket) {
	for i, a := range j.s.Actions {
		if nr, ok := a.(noRestored); ok && t.Restored && nr.NoRestored() {
			continue
		}
		if err := a.Ban(ctx, t); err != nil {
			j.s.Log.Error("action ban failed, will retry", "action", a.Name(), "ip", t.IP, "err", err)
			j.mu.Lock()
			if b.Failed == nil {
				b.Failed = map[string]string{}
			}
			b.Failed[a.Name()] = err.Error()
			j.retry = append(j.retry, retryItem{ip: t.IP, action: i, at: time.Now().Add(time.Second), wait: time.Second})
			j.mu.Unlock()
		}
	}
	if j.s.OnBan != nil {
		j.s.OnBan(j.s.Name, t.IP, t.Restored)
	}
}

// restore applies the jail's active bans from the store, dropping those
// that ended while the daemon was down.
func (j *Jail) restore(ctx context.Context) error {
	bans, err := j.s.Store.JailBans(ctx, j.s.Name)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, rec := range bans {
		if end := rec.End(); !end.IsZero() && !end.After(now) {
			if err := j.s.Store.RemoveJailBan(ctx, j.s.Name, rec.IP); err != nil {
				return err
			}
			continue
		}
		var data struct {
			Failures int      `json:"failures"`
			Matches  []string `json:"matches"`
		}
		json.Unmarshal([]byte(rec.Data), &data)
		b := &Ban{IP: rec.IP, At: rec.At, End: rec.End(), BanCount: rec.BanCount, Restored: true}
		j.mu.Lock()
		j.bans[rec.IP] = b
		if !b.End.IsZero() {
			heap.Push(&j.ends, endItem{ip: rec.IP, at: b.End})
		}
		j.mu.Unlock()
		j.apply(ctx, b, action.Ticket{IP: rec.IP, Time: rec.At, BanTime: rec.BanTime, BanCount: rec.BanCount,
			Failures: data.Failures, Matches: data.Matches, Restored: true})
	}
	return nil
}

// UnbanIP lifts ip's ban now.
func (j *Jail) UnbanIP(ctx context.Context, ip string) error {
	if err := j.waitReady(ctx); err != nil {
		return err
	}
	j.mu.Lock()
	b, ok := j.bans[ip]
	j.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not banned in jail %q", ip, j.s.Name)
	}
	return j.unban(ctx, b)
}

func (j *Jail) unban(ctx context.Context, b *Ban) error {
	t := action.Ticket{IP: b.IP, Time: b.At, BanCount: b.BanCount}
	var errs []error
	for _, a := range j.s.Actions {
		if err := a.Unban(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	j.mu.Lock()
	delete(j.bans, b.IP)
	j.mu.Unlock()
	if err := j.s.Store.RemoveJailBan(ctx, j.s.Name, b.IP); err != nil {
		errs = append(errs, err)
	}
	if j.s.OnUnban != nil {
		j.s.OnUnban(j.s.Name, b.IP, false)
	}
	return errors.Join(errs...)
}

// unbanDue lifts the bans whose time is up.
func (j *Jail) unbanDue(ctx context.Context) {
	now := time.Now()
	for {
		j.mu.Lock()
		if j.ends.Len() == 0 || j.ends[0].at.After(now) {
			j.mu.Unlock()
			return
		}
		it := heap.Pop(&j.ends).(endItem)
		b, ok := j.bans[it.ip]
		j.mu.Unlock()
		if !ok || !b.End.Equal(it.at) {
			continue // lifted by hand, or banned again since
		}
		if err := j.unban(ctx, b); err != nil {
			j.s.Log.Error("unban", "ip", b.IP, "err", err)
		}
	}
}

// retryDue tries the failed action bans whose time has come, backing off
// up to a minute between tries.
func (j *Jail) retryDue(ctx context.Context) {
	now := time.Now()
	j.mu.Lock()
	var due, later []retryItem
	for _, r := range j.retry {
		if r.at.After(now) {
			later = append(later, r)
		} else {
			due = append(due, r)
		}
	}
	j.retry = later
	j.mu.Unlock()
	for _, r := range due {
		j.mu.Lock()
		b, ok := j.bans[r.ip]
		j.mu.Unlock()
		if !ok {
			continue
		}
		a := j.s.Actions[r.action]
		err := a.Ban(ctx, action.Ticket{IP: b.IP, Time: b.At, BanCount: b.BanCount})
		j.mu.Lock()
		if err != nil {
			b.Failed[a.Name()] = err.Error()
			r.wait = min(2*r.wait, time.Minute)
			r.at = now.Add(r.wait)
			j.retry = append(j.retry, r)
		} else {
			delete(b.Failed, a.Name())
		}
		j.mu.Unlock()
	}
}

// nextWake is how long until the next unban or retry is due.
func (j *Jail) nextWake() time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	next := time.Hour
	now := time.Now()
	if j.ends.Len() > 0 {
		next = min(next, j.ends[0].at.Sub(now))
	}
	for _, r := range j.retry {
		next = min(next, r.at.Sub(now))
	}
	return max(next, 0)
}

func (j *Jail) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Status is a jail's state for edgeban status.
type Status struct {
	Jail        string `json:"jail"`
	Failing     int    `json:"currently_failed"`
	TotalFailed int    `json:"total_failed"`
	TotalBanned int    `json:"total_banned"`
	Banned      []Ban  `json:"banned"`
}

// Status returns the jail's state, bans by address.
func (j *Jail) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := Status{Jail: j.s.Name, Failing: j.failures.Len(), TotalFailed: j.total.failed, TotalBanned: j.total.banned}
	for _, b := range j.bans {
		c := *b
		if b.Failed != nil {
			c.Failed = map[string]string{}
			for k, v := range b.Failed {
				c.Failed[k] = v
			}
		}
		st.Banned = append(st.Banned, c)
	}
	sort.Slice(st.Banned, func(a, b int) bool { return st.Banned[a].IP < st.Banned[b].IP })
	return st
}

type endItem struct {
	ip string
	at time.Time
}

// endHeap orders bans by their end.
type endHeap []endItem

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(a, b int) bool { return h[a].at.Before(h[b].at) }
func (h endHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(endItem)) }
func (h *endHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

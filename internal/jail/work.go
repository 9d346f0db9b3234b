package jail

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/store"
)

// How a jail orders its work.
//
// Ban work comes first. The jail's loop reads a line, runs the filter and,
// when an address reaches maxretry, bans it there and then: it records
// the ban in the store and runs the actions, with no queue, timer or poll
// between the inotify event and the action (and a shell action's ban
// finds its shell started ahead, see action.Runner). Everything else, the
// unbans when bans end, the retries of failed action bans, and the
// actions of the bans restored at start, is background work, which a
// scheduler goroutine runs when no line is waiting, leaving a core to
// the ban work.
//
// Restored bans do not hold the start up. Run loads them from the store
// in one query and is ready at once: the jail knows every ban, answers
// for it, schedules its end, and bans new offenders; the actions of the
// restored bans run again in the background, oldest first. A shell
// command costs about a millisecond: 100,000 of them take minutes, and
// fail2ban, which queues its restored bans with the new failures, makes
// a new offender wait behind them.
//
// The actions of one ban run one at a time, in order: its ban (or its
// restored ban), a retry, its unban. Each ban has a mutex of its own for
// that; there is no lock around the actions of the jail, nor of all
// jails.

const (
	// maxYield is how long background work waits for the ban work to
	// pause before it runs anyway, yieldBatch jobs at a time, so that a
	// flood of lines delays unbans without stopping them.
	maxYield   = 100 * time.Millisecond
	yieldBatch = 16
	// firstRetry is the wait before a failed action ban is tried again;
	// it doubles up to maxRetryWait.
	firstRetry   = time.Second
	maxRetryWait = time.Minute
)

// restoredTicket returns the ticket the actions of restored ban b get,
// with the details the store keeps of it, read now: 100,000 restored
// bans do not keep theirs in memory while they wait.
func (j *Jail) restoredTicket(ctx context.Context, b *Ban) action.Ticket {
	t := action.Ticket{IP: b.IP, Time: b.At, BanTime: b.banTime(), BanCount: b.BanCount, Restored: true}
	raw, _, err := j.s.Store.JailBanData(ctx, j.s.Name, b.IP)
	if err != nil {
		j.s.Log.Error("restore: the ban's details", "ip", b.IP, "err", err)
	}
	var data struct {
		Failures int      `json:"failures"`
		Matches  []string `json:"matches"`
	}
	if raw != "" {
		json.Unmarshal([]byte(raw), &data) // what a damaged record lacks, the ticket lacks
	}
	t.Failures, t.Matches = data.Failures, data.Matches
	return t
}

// banTime is how long b lasts, < 0 for ever.
func (b *Ban) banTime() time.Duration {
	if b.End.IsZero() {
		return -1
	}
	return b.End.Sub(b.At)
}

// priority lets ban work go first: the ban work in hand holds it, and
// background work waits until nothing does.
type priority struct {
	mu   sync.Mutex
	n    int           // ban work in hand
	calm chan struct{} // closed when n drops to zero
}

func (p *priority) hold() {
	p.mu.Lock()
	if p.n == 0 {
		p.calm = make(chan struct{})
	}
	p.n++
	p.mu.Unlock()
}

func (p *priority) release() {
	p.mu.Lock()
	p.n--
	if p.n == 0 {
		close(p.calm)
	}
	p.mu.Unlock()
}

// wait waits until no ban work is in hand, and reports whether that came
// before limit had passed or ctx ended.
func (p *priority) wait(ctx context.Context, limit time.Duration) bool {
	p.mu.Lock()
	if p.n == 0 {
		p.mu.Unlock()
		return true
	}
	calm := p.calm
	p.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-calm:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// ban records a new ban in the store, then runs the actions. prev is the
// number of earlier bans of the address when the caller has looked it
// up for bantime.increment, -1 otherwise.
//
// The store's record comes first, so that no action's ban is ever
// unknown to the store: a crash between the two leaves a record whose
// ban is restored and lifted on time, never a firewall rule that nothing
// will lift. The record does not wait for the disk (see store.AddJailBan):
// it survives a crash of the daemon as soon as it is written, and one of
// the machine within an fsync's time, when the kernel's firewall rules
// would be gone as well. So the action waits for a write into the
// database's log only, a tenth of a millisecond.
func (j *Jail) ban(ctx context.Context, t action.Ticket, now time.Time, prev int) error {
	j.mu.Lock()
	if _, ok := j.bans[t.IP]; ok || j.banning[t.IP] {
		j.mu.Unlock()
		return fmt.Errorf("%s is already banned in jail %q", t.IP, j.s.Name)
	}
	j.banning[t.IP] = true
	j.mu.Unlock()
	b, bantime, err := j.record(ctx, t, now, prev)
	if err != nil {
		j.mu.Lock()
		delete(j.banning, t.IP)
		j.mu.Unlock()
		return err
	}
	t.Time, t.BanTime, t.BanCount = b.At, bantime, b.BanCount
	b.act.Lock() // an unban of b waits for its actions
	defer b.act.Unlock()
	j.mu.Lock()
	delete(j.banning, t.IP)
	j.bans[t.IP] = b
	j.total.banned++
	j.counters.bans.Add(1)
	if !b.End.IsZero() {
		heap.Push(&j.ends, b)
	}
	j.mu.Unlock()
	j.poke()
	j.apply(ctx, b, t)
	return nil
}

// record writes ban t to the store and returns it with its bantime.
func (j *Jail) record(ctx context.Context, t action.Ticket, now time.Time, prev int) (*Ban, time.Duration, error) {
	count := 1
	if j.s.Increment.Enabled {
		if prev < 0 {
			rec, ok, err := j.s.Store.LastBan(ctx, t.IP, j.s.Name, j.s.Increment.OverallJails)
			if err != nil {
				return nil, 0, err
			}
			prev = 0
			if ok {
				prev = rec.BanCount
			}
		}
		count = prev + 1
	}
	bantime := j.s.Increment.BanTime(j.s.BanTime, count-1, nil)
	now = now.Truncate(time.Millisecond) // as the store keeps it: a restart restores the same times
	data, _ := json.Marshal(map[string]any{"failures": t.Failures, "matches": t.Matches})
	rec := store.JailBan{Jail: j.s.Name, IP: t.IP, At: now, BanTime: bantime, BanCount: count, Data: string(data)}
	if err := j.s.Store.AddJailBan(ctx, rec); err != nil {
		return nil, 0, err
	}
	return &Ban{IP: t.IP, At: now, End: rec.End(), BanCount: count, act: new(sync.Mutex)}, bantime, nil
}

// noRestored is an action that a restored ban skips (norestored).
type noRestored interface{ NoRestored() bool }

// apply runs every action's ban, b.act held; a failure is kept for a
// retry. A restored ban skips the actions with norestored, and those
// that had every restored ban at once (see syncer).
func (j *Jail) apply(ctx context.Context, b *Ban, t action.Ticket) {
	for i, a := range j.s.Actions {
		if nr, ok := a.(noRestored); ok && t.Restored && nr.NoRestored() {
			continue
		}
		if t.Restored && j.synced[i] {
			continue
		}
		err := a.Ban(ctx, t)
		j.countAction(i, true, err)
		if err != nil {
			j.s.Log.Error("action ban failed, will retry", "action", a.Name(), "ip", t.IP, "err", err)
			j.mu.Lock()
			if b.Failed == nil {
				b.Failed = map[string]string{}
			}
			b.Failed[a.Name()] = err.Error()
			j.retry = append(j.retry, retryItem{ip: t.IP, action: i, at: time.Now().Add(firstRetry), wait: firstRetry})
			j.mu.Unlock()
			j.poke()
		}
	}
	if j.s.OnBan != nil {
		j.s.OnBan(j.s.Name, t.IP, t.Restored)
	}
}

// restore loads the jail's active bans from the store, dropping those
// that ended while the daemon was down, and queues their actions for the
// background.
func (j *Jail) restore(ctx context.Context) error {
	now := time.Now()
	var ended []string
	j.mu.Lock()
	err := j.s.Store.EachJailBan(ctx, j.s.Name, func(rec store.JailBan) error {
		end := rec.End()
		if !end.IsZero() && !end.After(now) {
			ended = append(ended, rec.IP)
			return nil
		}
		b := &Ban{IP: rec.IP, At: rec.At, End: end, BanCount: rec.BanCount, Restored: true, Pending: true, act: new(sync.Mutex)}
		j.bans[rec.IP] = b
		if !end.IsZero() {
			j.ends = append(j.ends, b)
		}
		j.restoring = append(j.restoring, b)
		return nil
	})
	j.pending = len(j.restoring)
	heap.Init(&j.ends)
	j.mu.Unlock()
	if err == nil && len(ended) > 0 {
		ended = j.unbanPersistent(ctx, ended)
		err = j.s.Store.RemoveJailBans(ctx, j.s.Name, ended)
	}
	if err == nil {
		j.sync(ctx)
	}
	return err
}

// syncer is an action whose bans live where they outlive the daemon, in
// the kernel's firewall, and which takes every active ban of the jail
// at once at start: it makes that place hold exactly them, in one step,
// dropping what a killed daemon left there and no longer banned, with
// no active ban missing on the way. The restored bans then skip its
// Ban. An action whose Sync fails gets them one by one, as the others
// do, in the background.
type syncer interface {
	Sync(ctx context.Context, bans []action.Ticket) error
}

// sync gives the restored bans to the actions that take them at once;
// it runs before the jail is ready, so that no new ban races it.
func (j *Jail) sync(ctx context.Context) {
	var tickets []action.Ticket
	for i, a := range j.s.Actions {
		s, ok := a.(syncer)
		if !ok {
			continue
		}
		if tickets == nil {
			j.mu.Lock()
			tickets = make([]action.Ticket, 0, len(j.restoring))
			for _, b := range j.restoring {
				tickets = append(tickets, action.Ticket{IP: b.IP, Time: b.At, BanTime: b.banTime(), BanCount: b.BanCount, Restored: true})
			}
			j.mu.Unlock()
		}
		if err := s.Sync(ctx, tickets); err != nil {
			j.s.Log.Error("restore: the action could not take the restored bans at once; it gets them one by one",
				"action", a.Name(), "bans", len(tickets), "err", err)
			continue
		}
		j.synced[i] = true
	}
}

// persistent is an action whose bans outlive the daemon (Cloudflare's):
// a ban of it that ended while the daemon was down is still there.
type persistent interface{ Persistent() bool }

// unbanPersistent lifts, in the actions whose bans outlive the daemon,
// the bans that ended while it was down, and returns those that are done
// with; one whose unban failed stays in the store, for the next start.
func (j *Jail) unbanPersistent(ctx context.Context, ended []string) []string {
	done := ended[:0:0]
	for _, ip := range ended {
		ok := true
		for i, a := range j.s.Actions {
			if p, is := a.(persistent); !is || !p.Persistent() {
				continue
			}
			err := a.Unban(ctx, action.Ticket{IP: ip})
			j.countAction(i, false, err)
			if err != nil {
				j.s.Log.Error("unban of a ban that ended while the daemon was down", "action", a.Name(), "ip", ip, "err", err)
				ok = false
			}
		}
		if ok {
			done = append(done, ip)
		}
	}
	return done
}

// takePending reports whether b is still banned and its actions are to
// run again, and if so marks them as run; j.mu is held.
func (j *Jail) takePending(b *Ban) bool {
	if !b.Pending || j.bans[b.IP] != b {
		return false
	}
	b.Pending = false
	j.pending--
	return true
}

// reapply runs the actions of restored ban b, unless they ran already.
func (j *Jail) reapply(ctx context.Context, b *Ban) {
	b.act.Lock()
	defer b.act.Unlock()
	j.mu.Lock()
	pending := j.takePending(b)
	j.mu.Unlock()
	if pending {
		j.apply(ctx, b, j.restoredTicket(ctx, b))
	}
}

// unban runs the actions' unban of b and forgets it. A restored ban
// whose actions have not run again gets its ban first, so that each
// action sees a ban before its unban, as before the restart.
func (j *Jail) unban(ctx context.Context, b *Ban) error {
	b.act.Lock()
	defer b.act.Unlock()
	j.mu.Lock()
	if j.bans[b.IP] != b {
		j.mu.Unlock()
		return fmt.Errorf("%s is not banned in jail %q", b.IP, j.s.Name)
	}
	pending := j.takePending(b)
	j.mu.Unlock()
	if pending {
		j.apply(ctx, b, j.restoredTicket(ctx, b))
	}
	t := action.Ticket{IP: b.IP, Time: b.At, BanTime: b.banTime(), BanCount: b.BanCount}
	var errs []error
	for i, a := range j.s.Actions {
		err := a.Unban(ctx, t)
		j.countAction(i, false, err)
		if err != nil {
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

// retryBan tries a failed action ban again, backing off up to
// maxRetryWait between tries.
func (j *Jail) retryBan(ctx context.Context, r retryItem) {
	j.mu.Lock()
	b := j.bans[r.ip]
	j.mu.Unlock()
	if b == nil {
		return
	}
	b.act.Lock()
	defer b.act.Unlock()
	j.mu.Lock()
	current := j.bans[r.ip] == b
	j.mu.Unlock()
	if !current {
		return // lifted meanwhile
	}
	t := action.Ticket{IP: b.IP, Time: b.At, BanTime: b.banTime(), BanCount: b.BanCount, Restored: b.Restored}
	a := j.s.Actions[r.action]
	err := a.Ban(ctx, t)
	j.countAction(r.action, true, err)
	j.mu.Lock()
	if err != nil {
		b.Failed[a.Name()] = err.Error()
		r.wait = min(2*r.wait, maxRetryWait)
		r.at = time.Now().Add(r.wait)
		j.retry = append(j.retry, r)
	} else {
		delete(b.Failed, a.Name())
	}
	j.mu.Unlock()
	if err != nil {
		j.poke()
	}
}

// nextJob returns the background work to run next, most urgent first:
// a ban whose time is up, a retry that is due, the actions of a restored
// ban. With nothing to run, it returns how long until something is due.
func (j *Jail) nextJob(now time.Time) (func(context.Context), time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.ends.Len() > 0 && !j.ends[0].End.After(now) {
		b := heap.Pop(&j.ends).(*Ban)
		if j.bans[b.IP] == b { // else lifted by hand, or banned again since
			return func(ctx context.Context) {
				if err := j.unban(ctx, b); err != nil {
					j.s.Log.Error("unban", "ip", b.IP, "err", err)
				}
			}, 0
		}
	}
	next := time.Hour
	for i, r := range j.retry {
		if !r.at.After(now) {
			j.retry = append(j.retry[:i:i], j.retry[i+1:]...)
			return func(ctx context.Context) { j.retryBan(ctx, r) }, 0
		}
		next = min(next, r.at.Sub(now))
	}
	for len(j.restoring) > 0 {
		b := j.restoring[0]
		j.restoring[0] = nil
		j.restoring = j.restoring[1:]
		if b.Pending && j.bans[b.IP] == b {
			return func(ctx context.Context) { j.reapply(ctx, b) }, 0
		}
	}
	j.restoring = nil
	if j.ends.Len() > 0 {
		next = min(next, j.ends[0].End.Sub(now))
	}
	return nil, max(next, 0)
}

// background runs the background work until ctx ends, each job once no
// ban work is in hand (see maxYield), and returns when the jobs it
// started have finished. Those finish with their actions: a command is
// not cut short because the jail stops. It runs up to GOMAXPROCS-1 jobs
// at a time (at least one), so that a core is left for new bans: on two
// cores, with two jobs at a time, the 100,000 restored bans' actions
// went a third faster, and new bans meanwhile took up to 25 ms instead
// of 2.
func (j *Jail) background(ctx context.Context) {
	slots := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	credit := 0 // jobs that may start without waiting for the ban work
	for {
		if credit > 0 {
			credit--
		} else if !j.prio.wait(ctx, maxYield) {
			credit = yieldBatch - 1
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			return
		}
		job, wait := j.nextJob(time.Now())
		if job == nil {
			<-slots
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-j.wake:
			case <-timer.C:
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			job(context.WithoutCancel(ctx))
		})
	}
}

// poke tells the background that the schedule changed.
func (j *Jail) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

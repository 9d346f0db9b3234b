package jail

import (
	"context"
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
	// Tail holds the files read from their end when no position is
	// stored for them (logpath = PATH tail); the others from their start.
	Tail map[string]bool
	Poll bool // backend = polling
	// Journal, when set, makes the jail read the systemd journal with
	// these options (backend = systemd). The jail sets where reading
	// starts: after the entry it handled last, if that is within
	// FindTime, else at now - FindTime, as fail2ban does.
	Journal  *source.JournalOptions
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
	// Counters count the jail's work (see Stats); nil: counters of its
	// own. The daemon hands those of a jail to the jail that replaces it
	// on a reload.
	Counters *Counters
}

// Ban is one active ban of a jail.
type Ban struct {
	IP       string    `json:"ip"`
	At       time.Time `json:"at"`
	End      time.Time `json:"end,omitzero"` // zero: permanent
	BanCount int       `json:"bancount"`
	Restored bool      `json:"restored,omitempty"`
	// Pending marks a restored ban whose actions have not run again yet:
	// they run in the background after the start (see work.go).
	Pending bool `json:"pending,omitempty"`
	// Failed names the actions whose ban has not succeeded yet, with
	// their last error; they are tried again.
	Failed map[string]string `json:"failed,omitempty"`

	// act is held while an action of the ban runs: its ban, a retry, its
	// unban run one at a time, in that order.
	act *sync.Mutex
}

// Jail runs one jail: it follows its logs, counts failures, bans, and
// lifts bans when they end. Its methods are safe for concurrent use.
type Jail struct {
	s     Settings
	ready chan struct{} // closed once Run has restored the bans

	counters       *Counters
	actionCounters []*actionCounters // those of s.Actions, in order

	prio priority      // ban work in hand, which background work waits for
	wake chan struct{} // the background's schedule changed
	// synced marks the actions that took the restored bans at once
	// (see syncer): set by Run before the background starts.
	synced []bool

	mu        sync.Mutex // guards what follows
	failures  *Failures
	bans      map[string]*Ban
	banning   map[string]bool // being recorded, not in bans yet
	ends      endHeap
	retry     []retryItem
	restoring []*Ban // restored bans whose actions are to run again, oldest first
	pending   int    // restored bans whose actions have not run again
	total     struct{ failed, banned int }
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
	c := s.Counters
	if c == nil {
		c = &Counters{}
	}
	ac := make([]*actionCounters, len(s.Actions))
	for i, a := range s.Actions {
		ac[i] = c.action(a.Name())
	}
	return &Jail{s: s, failures: NewFailures(s.MaxRetry, s.FindTime, s.MaxMatches), counters: c, actionCounters: ac,
		bans: map[string]*Ban{}, banning: map[string]bool{}, wake: make(chan struct{}, 1), ready: make(chan struct{}),
		synced: make([]bool, len(s.Actions))}
}

// Name is the jail's name.
func (j *Jail) Name() string { return j.s.Name }

// JournalPosition is the name under which a jail's place in the journal
// is stored among its log positions (fail2ban's name for it): the
// cursor of the last entry handled, and that entry's time in
// microseconds.
const JournalPosition = "systemd-journal"

// lineEvent is a line from a source, with what to store to resume after
// it.
type lineEvent struct {
	key  string    // the position's name: the file's path, or JournalPosition
	text string    // the line
	at   time.Time // the journal entry's time; zero for a file's line, whose date is in its text
	pos  logPos
}

// logPos is a stored log position: for a file, the MD5 of its first line
// and an offset; for the journal, a cursor and a time.
type logPos struct {
	mark string
	off  int64
}

// Run starts the actions, restores the jail's bans from the store, and
// follows the logs until ctx ends; it then saves the log positions and
// stops the actions (the bans stay in the store, to be restored). The
// jail is ready once the bans are loaded: their actions run again in the
// background, after new bans (see work.go).
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
	bctx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	background := make(chan struct{})
	go func() {
		defer close(background)
		j.background(bctx)
	}()
	lines := make(chan lineEvent, 256)
	fctx, stopFollow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// send hands a line to the loop below, which releases prio once it
	// has handled it.
	send := func(ev lineEvent) error {
		j.prio.hold() // until the loop has handled the line
		select {
		case lines <- ev:
			return nil
		case <-fctx.Done():
			j.prio.release()
			return fctx.Err()
		}
	}
	fail := func(err error) error {
		stopFollow()
		wg.Wait()
		stopBackground()
		<-background
		if ctx.Err() != nil {
			return j.stopActions(ctx)
		}
		return err
	}
	for _, p := range j.s.LogPaths {
		opts := source.Options{Poll: j.s.Poll, FromEnd: j.s.Tail[p], Logger: j.s.Log}
		if md5, pos, ok, err := j.s.Store.LogPosition(ctx, j.s.Name, p); err != nil {
			return fail(err)
		} else if ok {
			opts.Start = &source.Position{FirstLineMD5: md5, Offset: pos}
		}
		wg.Go(func() {
			err := source.Follow(fctx, p, opts, func(l source.Line) error {
				return send(lineEvent{key: p, text: l.Text, pos: logPos{l.Pos.FirstLineMD5, l.Pos.Offset}})
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				j.s.Log.Error("log source stopped", "path", p, "err", err)
			}
		})
	}
	if j.s.Journal != nil {
		opts := *j.s.Journal
		opts.Logger = j.s.Log
		opts.Cursor, opts.Since = "", time.Now().Add(-j.s.FindTime)
		cursor, at, ok, err := j.s.Store.LogPosition(ctx, j.s.Name, JournalPosition)
		if err != nil {
			return fail(err)
		}
		if ok && cursor != "" && !time.UnixMicro(at).Before(opts.Since) {
			// The entries before it within findtime were handled; older
			// ones count for nothing.
			opts.Cursor, opts.Since = cursor, time.UnixMicro(at)
		}
		if len(opts.Match) == 0 {
			j.s.Log.Warn("no journalmatch: the filter reads every entry of the journal, which costs; set journalmatch in the filter")
		}
		j.s.Log.Info("reading the systemd journal", "match", opts.Match, "after", opts.Cursor, "since", opts.Since)
		wg.Go(func() {
			err := source.FollowJournal(fctx, opts, func(e source.JournalEntry) error {
				return send(lineEvent{key: JournalPosition, text: e.Text, at: e.Time, pos: logPos{e.Cursor, e.Time.UnixMicro()}})
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				j.s.Log.Error("journal source stopped", "err", err)
			}
		})
	}
	positions := map[string]logPos{}
	savePositions := func() {
		for p, pos := range positions {
			if pos.mark == "" {
				continue // a journal entry without a cursor: nothing to resume after
			}
			if err := j.s.Store.SetLogPosition(context.WithoutCancel(ctx), j.s.Name, p, pos.mark, pos.off); err != nil {
				j.s.Log.Error("save log position", "path", p, "err", err)
			}
		}
		clear(positions)
	}
	save := time.NewTicker(time.Second)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			stopFollow()
			wg.Wait()
			// Lines already read are handled before the positions are saved.
			for {
				select {
				case ev := <-lines:
					j.handleLine(context.WithoutCancel(ctx), ev.text, ev.at)
					positions[ev.key] = ev.pos
					j.prio.release()
					continue
				default:
				}
				break
			}
			savePositions()
			<-background
			return j.stopActions(ctx)
		case ev := <-lines:
			j.handleLine(ctx, ev.text, ev.at)
			positions[ev.key] = ev.pos
			j.prio.release()
		case <-save.C:
			savePositions()
		}
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

// handleLine runs the filter over one line and counts its failures. A
// journal entry's line comes with the entry's time (at), which is the
// failures' time; a file's line has its date in its text.
func (j *Jail) handleLine(ctx context.Context, text string, at time.Time) {
	var res filter.Result
	if at.IsZero() {
		res = j.s.Filter.Process(text)
	} else {
		res = j.s.Filter.ProcessDated(text, at)
	}
	j.counters.linesRead.Add(1)
	if len(res.Failures) > 0 {
		j.counters.linesMatched.Add(1)
	}
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
		level := slog.LevelInfo
		if rule == "proxy" {
			level = slog.LevelDebug // one warning says it all (IgnoreRules.ProxyWarning)
		}
		j.s.Log.Log(ctx, level, "ignore", "ip", id, "by", rule)
		j.counters.ignored.Add(1)
		return
	}
	j.mu.Lock()
	_, banned := j.bans[id]
	j.total.failed++
	j.mu.Unlock()
	j.counters.failures.Add(1)
	if banned {
		return
	}
	// An address banned before weighs more (bantime.increment); its
	// count is looked up once, for the weight and for the ban.
	count, prev := 1, -1
	if j.s.Increment.Enabled {
		if rec, ok, err := j.s.Store.LastBan(ctx, id, j.s.Name, j.s.Increment.OverallJails); err == nil {
			prev = 0
			if ok {
				prev, count = rec.BanCount, Boost(rec.BanCount, j.s.MaxRetry)
			}
		}
	}
	j.mu.Lock()
	j.failures.Add(id, fl.Time, count, fl.Matches)
	f, ok := j.failures.ToBan(id)
	j.mu.Unlock()
	if ok {
		t := action.Ticket{IP: id, Failures: f.Attempts, Matches: f.Matches, IPJailMatches: f.Matches, Fields: fl.Fields}
		if err := j.ban(ctx, t, now, prev); err != nil {
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
	j.prio.hold() // ban work: the background waits
	defer j.prio.release()
	j.mu.Lock()
	j.failures.Forget(ip)
	j.mu.Unlock()
	return j.ban(ctx, action.Ticket{IP: ip, Failures: 1}, time.Now(), -1)
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

// Status is a jail's state for edgeban status.
type Status struct {
	Jail        string `json:"jail"`
	Failing     int    `json:"currently_failed"`
	TotalFailed int    `json:"total_failed"`
	TotalBanned int    `json:"total_banned"`
	// Pending counts the restored bans whose actions have not run again
	// yet (see Ban.Pending).
	Pending int   `json:"pending,omitempty"`
	Banned  []Ban `json:"banned"`
}

// Status returns the jail's state, bans by address.
func (j *Jail) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := Status{Jail: j.s.Name, Failing: j.failures.Len(), TotalFailed: j.total.failed, TotalBanned: j.total.banned,
		Pending: j.pending, Banned: make([]Ban, 0, len(j.bans))}
	for _, b := range j.bans {
		c := *b
		c.act = nil
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

// endHeap orders bans that end by their end.
type endHeap []*Ban

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(a, b int) bool { return h[a].End.Before(h[b].End) }
func (h endHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(*Ban)) }
func (h *endHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

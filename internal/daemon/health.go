package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/jail"
)

// Stats is what the daemon's metrics read at a scrape: the counters and
// state of the jails that run now, and the Cloudflare outbox.
type Stats struct {
	Jails      []jail.Stats
	Cloudflare []OutboxStats
}

// OutboxStats is the outbox of one Cloudflare destination.
type OutboxStats struct {
	// Where names the destination as status does: "user", "zone
	// example.com", "account ID", "list NAME".
	Where        string
	Live         int // rules or list items Cloudflare holds
	PendingBan   int // bans still to send
	PendingUnban int // unbans still to send
	Failing      int // of those, the ones whose last attempt failed
	Held         int // bans a capacity policy keeps back
}

// Stats returns the jails' stats, in configuration order, and the
// outbox's, by destination.
func (d *Daemon) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	for _, j := range d.running() {
		st.Jails = append(st.Jails, j.Stats())
	}
	dests, err := d.opts.Store.Status(ctx)
	if err != nil {
		return st, err
	}
	for _, ds := range dests {
		var spec delivery.Spec
		if err := json.Unmarshal(ds.Dest.Spec, &spec); err != nil {
			return st, fmt.Errorf("destination %d: %w", ds.Dest.ID, err)
		}
		st.Cloudflare = append(st.Cloudflare, OutboxStats{Where: where(spec), Live: ds.Live,
			PendingBan: ds.PendingBan, PendingUnban: ds.PendingUnban, Failing: ds.Failing, Held: ds.Held})
	}
	return st, nil
}

// where names a destination as status shows it.
func where(spec delivery.Spec) string {
	switch spec.Scope {
	case delivery.ScopeZone:
		return spec.Scope + " " + spec.Zone
	case delivery.ScopeAccount:
		return spec.Scope + " " + spec.Account
	case delivery.ScopeList:
		return spec.Scope + " " + spec.List
	}
	return spec.Scope
}

// Health is the daemon's health, as its health endpoint reports it.
type Health struct {
	// Healthy is true when every jail runs, the database answers and
	// the bans reach Cloudflare; Problems says what is wrong otherwise.
	Healthy bool `json:"healthy"`
	// Jails holds each jail's state: "running", "starting" (its actions
	// start and its bans are restored), or why it stopped.
	Jails    map[string]string `json:"jails"`
	Problems []string          `json:"problems,omitempty"`
}

// Health checks the daemon: it is healthy when it runs, every jail is
// running (started, its bans restored, its Run not returned), the
// database answers (and its writes reach the disk), and, when jails ban
// at Cloudflare, the worker runs (or another process delivers) and no
// ban or unban has kept failing for over StuckAfter. ctx bounds the
// database's checks.
func (d *Daemon) Health(ctx context.Context) Health {
	h := Health{Jails: map[string]string{}}
	problem := func(format string, args ...any) { h.Problems = append(h.Problems, fmt.Sprintf(format, args...)) }
	d.mu.Lock()
	switch {
	case d.stopped:
		problem("the daemon is stopping")
	case d.runCtx == nil:
		problem("the daemon is not running yet")
	}
	for _, j := range d.jails {
		state := j.state()
		h.Jails[j.Name()] = state
		if state != "running" {
			problem("jail %q: %s", j.Name(), state)
		}
	}
	worker, workerErr := d.worker, d.workerErr
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db := d.opts.Store
	dbErr := db.Ping(ctx)
	if dbErr != nil {
		problem("the database does not answer: %v", dbErr)
	} else if err := db.SyncErr(); err != nil {
		problem("the database's writes do not reach the disk: %v", err)
	}
	switch {
	case worker == workerFailed:
		problem("the Cloudflare worker stopped: %v", workerErr)
	case dbErr != nil: // the outbox cannot be read either: said already
	case worker == workerRunning || worker == workerElsewhere:
		after := cmp.Or(d.opts.Cloudflare.StuckAfter, 10*time.Minute)
		n, oldest, err := db.Stuck(ctx, time.Now().Add(-after))
		switch {
		case err != nil:
			problem("the Cloudflare outbox cannot be read: %v", err)
		case n > 0:
			op := "ban"
			if !oldest.Want {
				op = "unban"
			}
			problem("Cloudflare: %d bans or unbans have kept failing for over %s; the oldest, the %s of %s (jail %s) since %s, last failed with: %s",
				n, after, op, oldest.Target, oldest.Jail, oldest.Changed.Format(time.RFC3339), oldest.LastError)
		}
	}
	h.Healthy = len(h.Problems) == 0
	return h
}

// state tells whether j runs: "running", "starting", "not started", or
// why it stopped; the daemon's mu is held.
func (j *running) state() string {
	if j.done == nil {
		return "not started"
	}
	select {
	case <-j.done:
		if j.err != nil {
			return "stopped: " + j.err.Error()
		}
		return "stopped"
	default:
	}
	select {
	case <-j.Ready():
		return "running"
	default:
		return "starting"
	}
}

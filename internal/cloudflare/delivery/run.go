package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/store"
)

// withListLease runs fn while holding the account's list-write lease,
// waiting for it until ctx ends. It reports whether fn ran.
func (d *Deliverer) withListLease(ctx context.Context, spec Spec, fn func()) bool {
	name := listLease(spec)
	for {
		ok, err := d.db.AcquireLease(ctx, name, d.cfg.Owner, d.cfg.Lease)
		if err != nil {
			d.log.Error("list write lease", "err", err)
			return false
		}
		if ok {
			break
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	defer d.db.ReleaseLease(context.WithoutCancel(ctx), name, d.cfg.Owner)
	fn()
	return true
}

// Run is the worker: it delivers whatever becomes pending until ctx ends.
// Access-rule entries go out as soon as they are due, up to Concurrency at
// once; list entries gather for ListFlush (or until ListBatch are waiting)
// and go out as one bulk write per list, one write in flight per account.
// The caller must be the only worker (the CLI holds a lock for that) and
// should release a killed predecessor's claims first.
func (d *Deliverer) Run(ctx context.Context) error {
	const poll = 100 * time.Millisecond
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		busyList = map[string]bool{} // account lease names being flushed
		inflight int
		wake     = make(chan struct{}, 1)
	)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	defer func() {
		wg.Wait()
		d.db.Release(context.WithoutCancel(ctx), d.cfg.Owner)
	}()
	for {
		if err := d.schedule(ctx, &wg, &mu, busyList, &inflight, signal); err != nil && ctx.Err() == nil {
			d.log.Error("worker", "err", err)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// schedule starts the deliveries that are due.
func (d *Deliverer) schedule(ctx context.Context, wg *sync.WaitGroup, mu *sync.Mutex, busyList map[string]bool, inflight *int, signal func()) error {
	pend, err := d.db.Pending(ctx)
	if err != nil {
		return err
	}
	now := d.cfg.Now()
	// List destinations of one account flush together.
	lists := map[string][]*dest{}
	listDue := map[string]bool{}
	for _, p := range pend {
		if p.NextDue.After(now) {
			continue
		}
		ds, err := d.dest(ctx, p.Dest)
		if err != nil {
			d.log.Error("destination", "dest", p.Dest, "err", err)
			continue
		}
		if ds.spec.Scope == ScopeList {
			name := listLease(ds.spec)
			lists[name] = append(lists[name], ds)
			if now.Sub(p.OldestChanged) >= d.cfg.ListFlush || p.Count >= d.cfg.ListBatch {
				listDue[name] = true
			}
			continue
		}
		mu.Lock()
		free := d.cfg.Concurrency - *inflight
		mu.Unlock()
		if free <= 0 {
			continue
		}
		es, err := d.db.Claim(ctx, d.cfg.Owner, store.ClaimFilter{Dests: []int64{ds.id}, Limit: free}, d.cfg.Lease)
		if err != nil {
			return err
		}
		es = d.applyRuleCapacity(ctx, ds, es)
		for _, e := range es {
			mu.Lock()
			*inflight++
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.deliverRule(ctx, ds, e)
				mu.Lock()
				*inflight--
				mu.Unlock()
				signal()
			}()
		}
	}
	for name, group := range lists {
		mu.Lock()
		busy := busyList[name]
		if !busy && listDue[name] {
			busyList[name] = true
		}
		mu.Unlock()
		if busy || !listDue[name] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(busyList, name)
				mu.Unlock()
				signal()
			}()
			d.flushLists(ctx, group)
		}()
	}
	return nil
}

// flushLists delivers the pending entries of one account's lists, holding
// the account's list-write lease.
func (d *Deliverer) flushLists(ctx context.Context, group []*dest) {
	ids := make([]int64, len(group))
	byID := map[int64]*dest{}
	for i, ds := range group {
		ids[i] = ds.id
		byID[ds.id] = ds
	}
	d.withListLease(ctx, group[0].spec, func() {
		es, err := d.db.Claim(ctx, d.cfg.Owner, store.ClaimFilter{Dests: ids, Limit: d.cfg.ListBatch}, d.cfg.Lease)
		if err != nil {
			d.log.Error("claiming list entries", "err", err)
			return
		}
		perDest := map[int64][]store.Entry{}
		for _, e := range es {
			perDest[e.Dest] = append(perDest[e.Dest], e)
		}
		for id, group := range perDest {
			d.deliverList(ctx, byID[id], group)
		}
		// Whatever is still claimed (an interrupted write) goes back now.
		if ctx.Err() != nil {
			d.db.Release(context.WithoutCancel(ctx), d.cfg.Owner)
		}
	})
}

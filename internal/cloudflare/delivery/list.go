package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/store"
)

// listLease is the name of the cross-process lease that keeps one list
// write in flight per account, as Cloudflare demands.
func listLease(spec Spec) string { return "cflist:" + spec.API + ":" + spec.Account }

// listID resolves the destination's list id by name, once.
func (d *Deliverer) listID(ctx context.Context, ds *dest) (string, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.listID != "" {
		return ds.listID, nil
	}
	key := "list:" + ds.spec.API + ":" + ds.spec.Account + ":" + ds.spec.List
	if id, ok, err := d.db.Get(ctx, key); err != nil {
		return "", err
	} else if ok {
		ds.listID = id
		return id, nil
	}
	lists, err := ds.client.Lists(ctx, ds.spec.Account)
	if err != nil {
		return "", fmt.Errorf("finding list %q: %w", ds.spec.List, err)
	}
	for _, l := range lists {
		if strings.EqualFold(l.Name, ds.spec.List) {
			if l.Kind != "" && l.Kind != "ip" {
				return "", fmt.Errorf("list %q is of kind %q, not ip", l.Name, l.Kind)
			}
			if err := d.db.Set(ctx, key, l.ID); err != nil {
				return "", err
			}
			ds.listID = l.ID
			return l.ID, nil
		}
	}
	return "", fmt.Errorf("account %s has no list %q: run 'edgeban cloudflare setup-list' first", ds.spec.Account, ds.spec.List)
}

// forgetListID drops a cached list id that Cloudflare no longer knows.
func (d *Deliverer) forgetListID(ctx context.Context, ds *dest) {
	ds.mu.Lock()
	ds.listID = ""
	ds.mu.Unlock()
	_ = d.db.Set(ctx, "list:"+ds.spec.API+":"+ds.spec.Account+":"+ds.spec.List, "")
}

// deliverList brings a batch of one list's entries in step: one bulk add
// and one bulk delete, each polled to completion. The caller holds the
// account's list lease.
func (d *Deliverer) deliverList(ctx context.Context, ds *dest, es []store.Entry) {
	failAll := func(group []store.Entry, err error) {
		for _, e := range group {
			d.fail(ctx, e, err)
		}
	}
	listID, err := d.listID(ctx, ds)
	if err != nil {
		failAll(es, err)
		return
	}
	keep, victims, fits := d.checkCapacity(ctx, []*dest{ds}, es)
	var adds, removes []store.Entry
	for _, e := range es {
		switch {
		case !e.Want:
			removes = append(removes, e)
		case fits || keep[e.Target]:
			adds = append(adds, e)
		}
	}
	if len(victims) > 0 {
		// Evictions go out with the batch's removals, so they cost no extra write.
		removes = append(removes, victims...)
	}
	if len(removes) > 0 {
		d.removeListItems(ctx, ds, listID, removes, len(victims))
	}
	if len(adds) > 0 {
		d.addListItems(ctx, ds, listID, adds)
	}
}

func (d *Deliverer) addListItems(ctx context.Context, ds *dest, listID string, adds []store.Entry) {
	items := make([]cloudflare.ListItemInput, len(adds))
	targets := make([]string, len(adds))
	for i, e := range adds {
		items[i] = cloudflare.ListItemInput{IP: e.Target, Comment: listComment(e.Jail, e.Changed)}
		targets[i] = e.Target
	}
	err := d.db.MarkSent(ctx, d.cfg.Owner, ds.id, targets...)
	if err == nil {
		err = d.bulk(ctx, ds, func() (string, error) {
			return ds.client.AddListItems(ctx, ds.spec.Account, listID, items)
		})
	}
	if err != nil {
		if cloudflare.IsNotFound(err) {
			d.forgetListID(ctx, ds)
		}
		var be *cloudflare.BulkError
		if errors.As(err, &be) && strings.Contains(strings.ToLower(be.Message), "maximum number of items") {
			// Someone else filled the list (items that are not ours count
			// too): report it the way the policy reports a full list.
			err = fmt.Errorf("list is full at Cloudflare (%s); these bans wait for room: %w", be.Message, err)
		}
		for _, e := range adds {
			d.fail(ctx, e, err)
		}
		return
	}
	rs := make([]store.Result, len(adds))
	for i, e := range adds {
		rs[i] = store.Result{Dest: e.Dest, Target: e.Target, Have: true, Op: "ban", Outcome: "added"}
	}
	d.log.Info("banned at Cloudflare in the list", "list", ds.spec.List, "items", len(adds))
	d.complete(ctx, rs...)
}

// bulk submits one list write and polls its operation to completion.
func (d *Deliverer) bulk(ctx context.Context, ds *dest, submit func() (string, error)) error {
	opID, err := submit()
	if err != nil {
		return err
	}
	op, err := ds.client.WaitBulkOperation(ctx, ds.spec.Account, opID)
	if err != nil {
		return err
	}
	if op.Status != "completed" {
		return fmt.Errorf("bulk operation %s ended %q", opID, op.Status)
	}
	return nil
}

// removeListItems deletes the items of removes that are ours. Items with no
// stored id are looked up, by search when there are few and by one listing
// when there are many. The last evicted entries of removes are victims of
// the capacity policy: they stay wanted, and are parked once removed.
func (d *Deliverer) removeListItems(ctx context.Context, ds *dest, listID string, removes []store.Entry, evicted int) {
	ids := map[string]string{}      // target → item id
	comments := map[string]string{} // target → comment
	var unknown []store.Entry
	for _, e := range removes {
		if e.RemoteID != "" {
			ids[e.Target] = e.RemoteID
		} else {
			unknown = append(unknown, e)
		}
	}
	if len(unknown) > 0 {
		want := map[string]bool{}
		for _, e := range unknown {
			want[e.Target] = true
		}
		seen := map[string]string{} // every item of ours the listing shows, for later unbans
		collect := func(items []cloudflare.ListItem) error {
			for _, it := range items {
				t := canonicalTarget(it.IP)
				if want[t] {
					ids[t], comments[t] = it.ID, it.Comment
				}
				if strings.HasPrefix(it.Comment, ListCommentPrefix) {
					seen[t] = it.ID
				}
			}
			return nil
		}
		defer func() {
			// Items are added without learning their ids; a listing teaches
			// them, so later unbans and evictions need not list again.
			if err := d.db.SetRemoteIDs(context.WithoutCancel(ctx), ds.id, seen); err != nil {
				d.log.Error("recording list item ids", "err", err)
			}
		}()
		var err error
		if len(unknown) <= 5 {
			for _, e := range unknown {
				if err = ds.client.ListItems(ctx, ds.spec.Account, listID, e.Target, collect); err != nil {
					break
				}
			}
		} else {
			err = ds.client.ListItems(ctx, ds.spec.Account, listID, "", collect)
		}
		if err != nil {
			if cloudflare.IsNotFound(err) {
				d.forgetListID(ctx, ds)
			}
			for _, e := range removes[:len(removes)-evicted] {
				d.fail(ctx, e, fmt.Errorf("looking list items up: %w", err))
			}
			return
		}
	}
	var del, deleting []string // item ids, and the targets they are
	var rs []store.Result
	regular := removes[:len(removes)-evicted]
	for _, e := range regular {
		r := store.Result{Dest: e.Dest, Target: e.Target, Op: "unban"}
		id, found := ids[e.Target]
		c, looked := comments[e.Target]
		switch {
		case !found:
			r.Outcome = "gone"
		case looked && !strings.HasPrefix(c, ListCommentPrefix):
			r.Outcome, r.Detail = "foreign", fmt.Sprintf("item %s (comment %q) is not ours; left alone", id, c)
			d.log.Warn("a list item that is not ours is left alone", "target", e.Target, "comment", c)
		default:
			r.Outcome = "deleted"
			del = append(del, id)
			deleting = append(deleting, e.Target)
		}
		rs = append(rs, r)
	}
	var victimTargets []string
	for _, v := range removes[len(removes)-evicted:] {
		if id, ok := ids[v.Target]; ok {
			del = append(del, id)
		}
		victimTargets = append(victimTargets, v.Target)
	}
	if len(del) > 0 {
		err := d.db.MarkSent(ctx, d.cfg.Owner, ds.id, deleting...)
		if err == nil {
			err = d.bulk(ctx, ds, func() (string, error) {
				return ds.client.DeleteListItems(ctx, ds.spec.Account, listID, del)
			})
		}
		if err != nil {
			for _, e := range regular {
				d.fail(ctx, e, err)
			}
			return
		}
		d.log.Info("unbanned at Cloudflare from the list", "list", ds.spec.List, "items", len(del))
	}
	d.complete(ctx, rs...)
	d.parkEvicted(ctx, ds, victimTargets)
}

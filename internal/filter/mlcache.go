package filter

import (
	"container/list"
	"strings"
	"time"
)

// mlCache holds multi-line failures by their id (mlfid), as fail2ban's
// cache does: at most max entries, each for ttl after it was set; when
// full, the oldest entries are dropped, expired ones first, to make room.
type mlCache struct {
	max   int
	ttl   time.Duration
	order *list.List // of *mlEntry, oldest set first
	byID  map[string]*list.Element
}

type mlEntry struct {
	id      string
	st      *failState
	expires time.Time
}

func newMLCache(max int, ttl time.Duration) *mlCache {
	return &mlCache{max: max, ttl: ttl, order: list.New(), byID: map[string]*list.Element{}}
}

func (c *mlCache) get(id string, now time.Time) *failState {
	e, ok := c.byID[id]
	if !ok {
		return nil
	}
	ent := e.Value.(*mlEntry)
	if ent.expires.After(now) {
		return ent.st
	}
	c.unset(id)
	return nil
}

func (c *mlCache) set(id string, st *failState, now time.Time) {
	if len(c.byID) >= c.max {
		// Drop from the oldest on, stopping after the first entry that was
		// still live once there is room.
		for c.order.Len() > 0 {
			front := c.order.Front()
			ent := front.Value.(*mlEntry)
			c.order.Remove(front)
			delete(c.byID, ent.id)
			if ent.expires.After(now) && len(c.byID) < c.max {
				break
			}
		}
	}
	if e, ok := c.byID[id]; ok {
		// A dict keeps a replaced key's place.
		ent := e.Value.(*mlEntry)
		ent.st, ent.expires = st, now.Add(c.ttl)
		return
	}
	// The cache keeps its own copy of id: the caller's may point into a
	// read buffer that is used again for later lines, which would change
	// a map key in place.
	id = strings.Clone(id)
	c.byID[id] = c.order.PushBack(&mlEntry{id: id, st: st, expires: now.Add(c.ttl)})
}

func (c *mlCache) unset(id string) {
	if e, ok := c.byID[id]; ok {
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

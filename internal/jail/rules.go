package jail

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
)

// IgnoreRules are all of a jail's ignore rules, checked in fail2ban's
// order: the ignorecache, ignoreself, ignoreip, then ignorecommand. The
// zero value ignores nothing.
type IgnoreRules struct {
	// List is ignoreip (nil: empty).
	List *IgnoreList
	// Self ignores this host's own addresses (ignoreself).
	Self bool
	// Command is ignorecommand: run with the failure's <ip> and <F-*>
	// tags (passed to the shell as arguments, never as code), it exits 0
	// to ignore the failure and 1 not to; anything else is an error,
	// logged, and the failure is not ignored.
	Command string
	// CommandTimeout bounds one run of Command (0: action.DefaultTimeout).
	CommandTimeout time.Duration
	// Cache remembers the outcome per key (ignorecache; nil: none).
	Cache *IgnoreCache
	// Resolver looks up host names in List and, with Self, this host's
	// names; nil: net.DefaultResolver.
	Resolver Resolver
	// Proxies are the networks of a reverse proxy in front of the
	// service (Cloudflare's, for a jail that bans at Cloudflare): their
	// addresses are never banned. When at least ProxyMin of the jail's
	// failures, and half of them, come from there, the server logs the
	// proxy's address instead of the client's, and ProxyWarning is
	// logged, once.
	Proxies      []netip.Prefix
	ProxyWarning string

	selfOnce sync.Once
	self     map[netip.Addr]bool
	seen     atomic.Int64 // failures checked
	proxied  atomic.Int64 // of those, from Proxies
	warned   atomic.Bool
}

// ProxyMin is how many failures from a proxy's addresses it takes before
// a jail warns that its server does not log the real client.
const ProxyMin = 10

// Ignored reports whether the failure with id and the capture groups
// fields is ignored, and by which rule ("" when not).
func (r *IgnoreRules) Ignored(ctx context.Context, log *slog.Logger, id string, fields map[string]string) (bool, string) {
	if r == nil {
		return false, ""
	}
	if r.fromProxy(log, id) {
		return true, "proxy"
	}
	var key string
	if r.Cache != nil {
		key = r.Cache.Key(id, fields)
		if ignored, rule, ok := r.Cache.get(key); ok {
			return ignored, rule
		}
	}
	ignored, rule := r.check(ctx, log, id, fields)
	if r.Cache != nil {
		r.Cache.put(key, ignored, rule)
	}
	return ignored, rule
}

func (r *IgnoreRules) check(ctx context.Context, log *slog.Logger, id string, fields map[string]string) (bool, string) {
	resolver := r.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if r.Self && r.isSelf(ctx, id, resolver) {
		return true, "ignoreself"
	}
	if r.List != nil && r.List.Contains(ctx, id, resolver) {
		return true, "ignoreip"
	}
	if r.Command != "" {
		values := map[string]string{"ip": id}
		s := action.Prepare(r.Command, values, fields)
		_, err := action.Run(ctx, s, r.CommandTimeout)
		var ee *action.ExitError
		switch {
		case err == nil:
			return true, "ignorecommand"
		case errors.As(err, &ee) && ee.Code == 1:
		default:
			log.Error("ignorecommand failed; the failure counts", "ip", id, "err", err)
		}
	}
	return false, ""
}

// fromProxy reports whether id is an address of Proxies, and warns once
// when such failures are many.
func (r *IgnoreRules) fromProxy(log *slog.Logger, id string) bool {
	if len(r.Proxies) == 0 {
		return false
	}
	seen := r.seen.Add(1)
	a, err := netip.ParseAddr(id)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range r.Proxies {
		if p.Contains(a) {
			n := r.proxied.Add(1)
			if n >= ProxyMin && 2*n >= seen && r.ProxyWarning != "" && r.warned.CompareAndSwap(false, true) {
				log.Warn(r.ProxyWarning, "from_proxy", n, "failures", seen)
			}
			return true
		}
	}
	return false
}

// isSelf reports whether id is one of this host's addresses: those of
// its interfaces, loopback, and what its host name resolves to, read
// once.
func (r *IgnoreRules) isSelf(ctx context.Context, id string, resolver Resolver) bool {
	a, err := netip.ParseAddr(id)
	if err != nil {
		return false
	}
	r.selfOnce.Do(func() {
		r.self = map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true, netip.IPv6Loopback(): true}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, x := range addrs {
				if p, err := netip.ParsePrefix(x.String()); err == nil {
					r.self[p.Addr().Unmap().WithZone("")] = true
				}
			}
		}
		if name, err := os.Hostname(); err == nil {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if addrs, err := resolver.LookupNetIP(lctx, "ip", name); err == nil {
				for _, x := range addrs {
					r.self[x.Unmap().WithZone("")] = true
				}
			}
		}
	})
	return r.self[a.Unmap().WithZone("")]
}

// tagRE finds a tag in an ignorecache key, as in an action's command.
var tagRE = regexp.MustCompile(`<([^ <>]+)>`)

// IgnoreCache is fail2ban's ignorecache: the outcome of the ignore rules
// remembered per key (a template such as "<ip>" or "<F-USER>@<ip>") for
// at most MaxTime, and for at most MaxCount keys, the least recently
// used going first. It saves an ignorecommand run per failure.
type IgnoreCache struct {
	key      string
	maxCount int
	maxTime  time.Duration
	now      func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element
	order *list.List // front: most recently used
}

type cacheItem struct {
	key     string
	ignored bool
	rule    string
	at      time.Time
}

// ParseIgnoreCache reads an ignorecache value, `key="<ip>", max-count=100,
// max-time=5m` (the defaults of what it leaves out: key <ip>, 100 keys,
// 5 minutes). An empty value is no cache (nil).
func ParseIgnoreCache(value string) (*IgnoreCache, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	spec, err := config.ParseSpec("ignorecache[" + value + "]")
	if err != nil {
		return nil, fmt.Errorf("ignorecache: %w", err)
	}
	c := &IgnoreCache{key: "<ip>", maxCount: 100, maxTime: 5 * time.Minute, now: time.Now,
		items: map[string]*list.Element{}, order: list.New()}
	for _, o := range spec.Options {
		switch o.Key {
		case "key":
			c.key = o.Value
		case "max-count":
			n, err := strconv.Atoi(o.Value)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("ignorecache: max-count %q is not a positive number", o.Value)
			}
			c.maxCount = n
		case "max-time":
			s, err := config.Seconds(o.Value)
			if err != nil || s <= 0 {
				return nil, fmt.Errorf("ignorecache: max-time %q is not a positive time", o.Value)
			}
			c.maxTime = time.Duration(s * float64(time.Second))
		default:
			return nil, fmt.Errorf("ignorecache: unknown option %q (key, max-count, max-time)", o.Key)
		}
	}
	return c, nil
}

// Key is the cache key of a failure: the key template with <ip> and the
// <F-*> tags replaced.
func (c *IgnoreCache) Key(id string, fields map[string]string) string {
	return tagRE.ReplaceAllStringFunc(c.key, func(m string) string {
		tag := m[1 : len(m)-1]
		if tag == "ip" {
			return id
		}
		if name, ok := strings.CutPrefix(tag, "F-"); ok {
			return fields[strings.ToLower(name)]
		}
		return m
	})
}

func (c *IgnoreCache) get(key string) (ignored bool, rule string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return false, "", false
	}
	it := e.Value.(*cacheItem)
	if c.now().Sub(it.at) >= c.maxTime {
		c.order.Remove(e)
		delete(c.items, key)
		return false, "", false
	}
	c.order.MoveToFront(e)
	return it.ignored, it.rule, true
}

func (c *IgnoreCache) put(key string, ignored bool, rule string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
	}
	c.items[key] = c.order.PushFront(&cacheItem{key: key, ignored: ignored, rule: rule, at: c.now()})
	for c.order.Len() > c.maxCount {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheItem).key)
	}
}

// ResolveID applies usedns to a failure whose id is a host name, as
// fail2ban does: "yes" and "warn" look the name up and count the failure
// against each address it has ("warn" saying so in the log), "raw" keeps
// the name as the id, and "no" drops the failure. An id that is an
// address is returned as it is.
func ResolveID(ctx context.Context, log *slog.Logger, r Resolver, useDNS, id string) []string {
	if _, err := netip.ParseAddr(id); err == nil {
		return []string{id}
	}
	switch useDNS {
	case "raw":
		return []string{id}
	case "no":
		return nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(lctx, "ip", id)
	if err != nil || len(addrs) == 0 {
		log.Warn("unable to find an address for the host name; the failure is dropped", "host", id, "err", err)
		return nil
	}
	seen := map[netip.Addr]bool{}
	var out []string
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !seen[a] {
			seen[a] = true
			out = append(out, a.String())
		}
	}
	if useDNS == "warn" {
		log.Warn("determined the address with a DNS lookup", "host", id, "ip", strings.Join(out, " "))
	}
	return out
}

// Package delivery keeps Cloudflare in step with edgeban's bans. Bans and
// unbans are first written to the store's durable outbox (Outbox); a
// Deliverer then claims what differs between what we want banned and what
// Cloudflare holds, makes the API calls, and records the outcome: the rule or
// item id with the ban, or the error and the time of the next attempt.
//
// It owns the rules of ownership (a rule whose note is not ours is never
// deleted), adoption (a duplicate create adopts the existing rule), one list
// write in flight per account, batching for IP Lists, and the capacity
// policies.
package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
)

// Scopes a destination can have.
const (
	ScopeUser    = "user"
	ScopeAccount = "account"
	ScopeZone    = "zone"
	ScopeList    = "list" // an account IP List, used by a WAF custom rule
)

// Capacity policies: what happens when a destination is full.
const (
	PolicyKeepOldest  = "keep-oldest"  // new bans wait, parked and reported, until room frees up
	PolicyEvictOldest = "evict-oldest" // the oldest bans are removed to make room, and reported
	PolicyAggregate   = "aggregate"    // addresses are merged into their /24 (IPv4) or /64 (IPv6), then keep-oldest
)

// DefaultNotes is the note of the seed's cloudflare-restv4 action. Keeping it
// as our default lets edgeban adopt and unban the rules that action made.
const DefaultNotes = "Banned by Fail2Ban"

// ListCommentPrefix starts the comment of every list item edgeban adds; items
// without it are not ours and are never deleted.
const ListCommentPrefix = "edgeban "

// Per-plan capacities from Cloudflare's documentation.
const (
	AccessRuleCap    = 50_000  // IP Access Rules per account
	ListCapFree      = 10_000  // list items across all lists, Free, Pro and Business
	ListCapEnterpise = 500_000 // list items across all lists, Enterprise
)

// Spec says where and how bans are delivered. Its canonical JSON is the
// destination's identity in the outbox, so it holds no secret, only the
// credential's fingerprint.
type Spec struct {
	API         string `json:"api"`
	Cred        string `json:"cred"`
	Scope       string `json:"scope"`
	Account     string `json:"account,omitempty"`
	Zone        string `json:"zone,omitempty"` // a zone id or a zone name
	List        string `json:"list,omitempty"`
	Mode        string `json:"mode,omitempty"`
	Notes       string `json:"notes,omitempty"` // template; {jail} is replaced with the jail's name
	AggregateV6 bool   `json:"aggregate_v6,omitempty"`
	Capacity    int    `json:"capacity,omitempty"`
	Policy      string `json:"policy,omitempty"`
}

var validModes = map[string]bool{"block": true, "challenge": true, "managed_challenge": true, "js_challenge": true}

// Normalize fills defaults and validates the spec.
func (s Spec) Normalize() (Spec, error) {
	if s.API == "" {
		s.API = cloudflare.DefaultBaseURL
	}
	s.API = strings.TrimRight(s.API, "/")
	if s.Cred == "" {
		return s, errors.New("no credential")
	}
	switch s.Scope {
	case ScopeUser:
	case ScopeAccount:
		if s.Account == "" {
			return s, errors.New("scope account needs an account id")
		}
	case ScopeZone:
		if s.Zone == "" {
			return s, errors.New("scope zone needs a zone id or name")
		}
	case ScopeList:
		if s.Account == "" {
			return s, errors.New("scope list needs an account id")
		}
		if s.List == "" {
			s.List = "edgeban"
		}
		if !validListName(s.List) {
			return s, fmt.Errorf("list name %q: use lower-case letters, digits and _ (at most 50)", s.List)
		}
	default:
		return s, fmt.Errorf("unknown scope %q (user, account, zone or list)", s.Scope)
	}
	if s.Scope == ScopeList {
		s.Mode, s.Notes, s.AggregateV6 = "", "", false
		if s.Capacity == 0 {
			s.Capacity = ListCapFree
		}
	} else {
		if s.Mode == "" {
			s.Mode = "block"
		}
		if !validModes[s.Mode] {
			return s, fmt.Errorf("mode %q: use block, challenge, managed_challenge or js_challenge", s.Mode)
		}
		if s.Notes == "" {
			s.Notes = DefaultNotes
		}
		if strings.TrimSpace(notesFixedPart(s.Notes)) == "" {
			return s, fmt.Errorf("notes %q: a note needs some fixed text, which marks our rules", s.Notes)
		}
		if s.Capacity == 0 {
			s.Capacity = AccessRuleCap
		}
	}
	switch s.Policy {
	case "":
		s.Policy = PolicyKeepOldest
	case PolicyKeepOldest, PolicyEvictOldest, PolicyAggregate:
	default:
		return s, fmt.Errorf("capacity policy %q: use %s, %s or %s", s.Policy, PolicyKeepOldest, PolicyEvictOldest, PolicyAggregate)
	}
	return s, nil
}

func validListName(n string) bool {
	if n == "" || len(n) > 50 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Key is the destination's identity in the outbox: where the rules live
// and how we recognise and map them. The credential, the mode and the
// capacity settings are not part of it, so that rotating a token or
// changing the policy keeps the bans already held; the latest registration
// of a destination sets them.
func (s Spec) Key() string {
	id := struct {
		API, Scope, Account, Zone, List, Notes string
		AggregateV6                            bool
	}{s.API, s.Scope, s.Account, s.Zone, s.List, s.Notes, s.AggregateV6}
	b, _ := json.Marshal(id)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// String describes the destination for people.
func (s Spec) String() string {
	switch s.Scope {
	case ScopeUser:
		return fmt.Sprintf("user access rules (%s, %q)", s.Mode, s.Notes)
	case ScopeAccount:
		return fmt.Sprintf("account %s access rules (%s, %q)", s.Account, s.Mode, s.Notes)
	case ScopeZone:
		return fmt.Sprintf("zone %s access rules (%s, %q)", s.Zone, s.Mode, s.Notes)
	default:
		return fmt.Sprintf("account %s list %s", s.Account, s.List)
	}
}

// Target maps an address (or CIDR) to the value Cloudflare stores for it at
// this destination. Addresses that aggregate to one target share one rule.
func (s Spec) Target(addr string) (string, error) {
	if s.Scope == ScopeList {
		return cloudflare.ListItemFor(addr)
	}
	cfg, err := cloudflare.TargetFor(addr, s.AggregateV6)
	if err != nil {
		return "", err
	}
	return cfg.Value, nil
}

// Cover is the range that the aggregate policy would merge target into:
// the /24 of an IPv4 address, the /64 of an IPv6 one (both allowed as
// ip_range rules and as list items). It is "" for a target that is already
// a range, or when the policy is not aggregate.
func (s Spec) Cover(target string) string {
	if s.Policy != PolicyAggregate {
		return ""
	}
	a, err := netip.ParseAddr(target)
	if err != nil {
		return ""
	}
	bits := 64
	if a.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(a, bits).Masked().String()
}

// Note renders the notes template for a jail.
func (s Spec) Note(jail string) string {
	return strings.ReplaceAll(s.Notes, "{jail}", jail)
}

// Owns reports whether a rule's note is one this destination writes.
func (s Spec) Owns(note string) bool {
	prefix, suffix, ok := strings.Cut(s.Notes, "{jail}")
	if !ok {
		return note == s.Notes
	}
	return len(note) >= len(prefix)+len(suffix) && strings.HasPrefix(note, prefix) && strings.HasSuffix(note, suffix)
}

// notesFixedPart is the longest fixed text of a notes template, used as the
// substring filter when looking rules up.
func notesFixedPart(tmpl string) string {
	prefix, suffix, ok := strings.Cut(tmpl, "{jail}")
	if !ok {
		return tmpl
	}
	if len(suffix) > len(prefix) {
		return suffix
	}
	return prefix
}

// listComment is the comment of a list item: it carries the jail and the time.
func listComment(jail string, at time.Time) string {
	if jail == "" {
		jail = "-"
	}
	return fmt.Sprintf("%sjail=%s banned=%s", ListCommentPrefix, jail, at.UTC().Format(time.RFC3339))
}

// canonicalTarget normalises an address or CIDR as Cloudflare returns it, so
// that listings can be matched against our targets.
func canonicalTarget(v string) string {
	if p, err := netip.ParsePrefix(v); err == nil {
		if p.Addr().Is4() && p.Bits() == 32 || p.Addr().Is6() && p.Bits() == 128 {
			return p.Addr().String()
		}
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.String()
	}
	return strings.ToLower(v)
}

// Secret is a credential as the outbox keeps it for the deliverers.
type Secret struct {
	Token string `json:"token,omitempty"`
	Email string `json:"email,omitempty"`
	Key   string `json:"key,omitempty"`
}

// Auth turns a stored secret into the client's credential.
func (s Secret) Auth() cloudflare.Auth {
	return cloudflare.Auth{Token: s.Token, Email: s.Email, Key: s.Key}
}

// SecretOf is the stored form of a credential.
func SecretOf(a cloudflare.Auth) Secret { return Secret{Token: a.Token, Email: a.Email, Key: a.Key} }

package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/store"
)

// Outbox is the enqueue side: it records bans and unbans durably and
// returns, leaving the API calls to a Deliverer.
type Outbox struct {
	db *store.DB
}

// NewOutbox returns the outbox kept in db.
func NewOutbox(db *store.DB) *Outbox { return &Outbox{db: db} }

// Dest is a registered destination.
type Dest struct {
	ID   int64
	Spec Spec
}

// Register records a destination and the credential that serves it, and
// returns it. The spec is normalised first; its Cred is set from auth.
func (o *Outbox) Register(ctx context.Context, spec Spec, auth cloudflare.Auth) (Dest, error) {
	if err := auth.Valid(); err != nil {
		return Dest{}, fmt.Errorf("credential: %w", err)
	}
	spec.Cred = auth.Fingerprint()
	spec, err := spec.Normalize()
	if err != nil {
		return Dest{}, err
	}
	secret, err := json.Marshal(SecretOf(auth))
	if err != nil {
		return Dest{}, err
	}
	if err := o.db.PutSecret(ctx, spec.Cred, secret); err != nil {
		return Dest{}, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return Dest{}, err
	}
	id, err := o.db.Destination(ctx, spec.Key(), b)
	if err != nil {
		return Dest{}, err
	}
	return Dest{ID: id, Spec: spec}, nil
}

// holds validates addresses and maps them to the destination's targets.
func holds(d Dest, jail string, addrs []string) ([]store.Hold, []string, error) {
	hs := make([]store.Hold, 0, len(addrs))
	targets := make([]string, 0, len(addrs))
	for _, a := range addrs {
		norm, err := normalizeAddr(a)
		if err != nil {
			return nil, nil, err
		}
		t, err := d.Spec.Target(norm)
		if err != nil {
			return nil, nil, fmt.Errorf("%q: %w", a, err)
		}
		hs = append(hs, store.Hold{Dest: d.ID, Target: t, Jail: jail, IP: norm, Cover: d.Spec.Cover(t)})
		targets = append(targets, t)
	}
	return hs, targets, nil
}

// normalizeAddr accepts an address or a CIDR and returns its canonical form;
// anything else is refused before it reaches the outbox.
func normalizeAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%q: an address with a zone cannot be banned", s)
		}
		return a.Unmap().String(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), nil
	}
	return "", fmt.Errorf("%q is not an IP address or CIDR", s)
}

// Ban records that jail bans addrs at d. It returns the targets involved.
func (o *Outbox) Ban(ctx context.Context, d Dest, jail string, addrs ...string) ([]string, error) {
	hs, targets, err := holds(d, jail, addrs)
	if err != nil {
		return nil, err
	}
	if _, err := o.db.Ban(ctx, hs...); err != nil {
		return nil, err
	}
	return targets, nil
}

// Unban records that jail no longer bans addrs at d. It returns the targets
// involved.
func (o *Outbox) Unban(ctx context.Context, d Dest, jail string, addrs ...string) ([]string, error) {
	hs, targets, err := holds(d, jail, addrs)
	if err != nil {
		return nil, err
	}
	if _, err := o.db.Unban(ctx, hs...); err != nil {
		return nil, err
	}
	return targets, nil
}

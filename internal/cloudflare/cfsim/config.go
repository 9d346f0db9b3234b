package cfsim

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// DemoToken is the API token the simulator accepts when Config names no
// credentials at all, so that a bare `cfsim` can be tried with curl.
const DemoToken = "cfsim-demo-token-do-not-use-in-production"

// Plan is a Cloudflare plan. It sets the custom lists quotas, the WAF custom
// rules quota and whether country blocks are allowed (API-NOTES §1.1, §2.4).
type Plan string

// The plans.
const (
	PlanFree       Plan = "free"
	PlanPro        Plan = "pro"
	PlanBusiness   Plan = "business"
	PlanEnterprise Plan = "enterprise"
)

// maxLists is the number of custom lists of any kind the plan allows.
func (p Plan) maxLists() int {
	switch p {
	case PlanFree:
		return 1
	case PlanEnterprise:
		return 1000
	default:
		return 10
	}
}

// maxListItems is the number of items the plan allows across all lists.
func (p Plan) maxListItems() int {
	if p == PlanEnterprise {
		return 500_000
	}
	return 10_000
}

// maxCustomRules is the number of WAF custom rules per zone.
func (p Plan) maxCustomRules() int {
	switch p {
	case PlanFree:
		return 5
	case PlanPro:
		return 20
	case PlanBusiness:
		return 100
	default:
		return 1000
	}
}

// ParsePlan returns the Plan named s.
func ParsePlan(s string) (Plan, error) {
	switch p := Plan(s); p {
	case PlanFree, PlanPro, PlanBusiness, PlanEnterprise:
		return p, nil
	}
	return "", fmt.Errorf("unknown plan %q (want free, pro, business or enterprise)", s)
}

// Token is an API token the simulator accepts as `Authorization: Bearer`.
type Token struct {
	Value string
	// ReadOnly tokens may read everything; every write gets 403 with code
	// 10000 (API-NOTES §3).
	ReadOnly bool
}

// Faults configures fault injection. Everything is off at its zero value.
// Probabilities are in [0, 1] and drawn from generators seeded by
// Config.Seed, one per kind of fault, so a run is reproducible for a given
// sequence of requests and enabling one fault does not change when another
// fires.
type Faults struct {
	// Error5xx is the probability that an authenticated API request is
	// answered 502, 503 or 520 with an HTML body before anything is applied.
	Error5xx float64
	// Applied5xx is the probability that a write which succeeded (and was
	// applied) is answered 502, 503 or 520 with an HTML body all the same,
	// as when a real request times out at the edge after the origin acted.
	Applied5xx float64
	// Burst429Every and Burst429Len inject bursts of rate limiting: after
	// every Burst429Every API requests that pass, the next Burst429Len
	// requests get 429 with Retry-After: 1, with error code 971 and 10100
	// in turn. Both must be positive to enable bursts.
	Burst429Every int
	Burst429Len   int
	// Latency is added before every API request is handled. A client that
	// gives up during the wait has nothing applied.
	Latency time.Duration
	// Drop is the probability that the connection of an API request is
	// closed without a response, before anything is applied.
	Drop float64
	// Malformed is the probability that a JSON response body is cut in
	// half, after the request was handled (and applied).
	Malformed float64
}

// Config holds everything a Server needs. The zero value is a working
// simulator: one account, one zone, the free plan, Cloudflare's rate limits,
// no faults, and the DemoToken as the only credential.
type Config struct {
	// Tokens are the API tokens accepted as `Authorization: Bearer`.
	Tokens []Token
	// Email and Key, when both set, are the Global API Key credentials
	// accepted as X-Auth-Email and X-Auth-Key.
	Email string
	Key   string
	// AccountID is the one account of the simulator (32 hex characters by
	// default).
	AccountID string
	// Zones maps zone ids to names. Default: one zone, example.com.
	Zones map[string]string
	// Plan sets the quotas. Default: free.
	Plan Plan

	// RuleCap is the maximum number of IP Access rules in the account, all
	// scopes together. Default 50,000.
	RuleCap int
	// NotEntitled lists the access rule scopes ("user", "account", "zone")
	// where a create fails with 10010 firewallaccessrules.api.not_entitled.
	NotEntitled []string
	// ZoneListInherited makes zone rule lists also return the user's and the
	// account's rules, as Cloudflare may (API-NOTES §1.1).
	ZoneListInherited bool

	// RateLimit is the number of requests per credential in RateWindow
	// (default 1,200 per 300 s). Going over locks the credential out for
	// Lockout (default 300 s). A negative RateLimit disables the limit.
	RateLimit  int
	RateWindow time.Duration
	Lockout    time.Duration

	// MaxLists and MaxListItems override the plan's quotas when positive.
	MaxLists     int
	MaxListItems int
	// ListWriteRequests and ListItemChanges are the lists write quotas per
	// ListQuotaWindow (default 30,000 requests and 1,000,000 item changes
	// per 12 h, API-NOTES §2.6); a negative value disables one.
	ListWriteRequests int
	ListItemChanges   int
	ListQuotaWindow   time.Duration
	// BulkDelay is how long a list bulk operation takes from submission to
	// completed or failed (default 300 ms; pending for the first third,
	// running for the rest). A negative value completes operations at once.
	BulkDelay time.Duration
	// IPv6Strict accepts IPv6 list items only as CIDRs of /64 or shorter,
	// as the 2024 schema says; otherwise any IPv6 address or CIDR is
	// accepted, as today (API-NOTES §2.2).
	IPv6Strict bool

	// Faults configures fault injection.
	Faults Faults
	// Seed seeds the fault generators and the id generator.
	Seed uint64
	// Now is the clock; default time.Now. Tests pass a fake one.
	Now func() time.Time
	// Logger receives request and fault logs; default slog.Default().
	Logger *slog.Logger
}

// Defaults for Config's zero fields.
const (
	DefaultAccountID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	DefaultZoneID    = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	DefaultZoneName  = "example.com"
	DefaultRuleCap   = 50_000
	DefaultRateLimit = 1200
	defaultUserID    = "7c5dae5552338874e5053f2534d2767a"
	defaultUserEmail = "user@example.com"
)

// Default durations for Config's zero fields.
const (
	DefaultRateWindow      = 300 * time.Second
	DefaultLockout         = 300 * time.Second
	DefaultBulkDelay       = 300 * time.Millisecond
	DefaultListQuotaWindow = 12 * time.Hour
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Validate reports the first invalid field of c, if any. New panics on a
// Config that does not validate.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns a copy of c with the zero fields filled in, or an
// error naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if len(c.AccountID) > 32 {
		return c, errors.New("config: AccountID is longer than 32 characters")
	}
	if len(c.Zones) == 0 {
		c.Zones = map[string]string{DefaultZoneID: DefaultZoneName}
	} else {
		zones := make(map[string]string, len(c.Zones))
		for id, name := range c.Zones {
			if !hex32.MatchString(id) {
				return c, fmt.Errorf("config: zone id %q is not 32 lowercase hex characters", id)
			}
			zones[id] = name
		}
		c.Zones = zones
	}
	if c.Plan == "" {
		c.Plan = PlanFree
	}
	if _, err := ParsePlan(string(c.Plan)); err != nil {
		return c, fmt.Errorf("config: Plan: %w", err)
	}
	if (c.Email == "") != (c.Key == "") {
		return c, errors.New("config: Email and Key must be set together")
	}
	for i, t := range c.Tokens {
		if t.Value == "" {
			return c, fmt.Errorf("config: Tokens[%d] is empty", i)
		}
	}
	for _, s := range c.NotEntitled {
		if s != scopeUser && s != scopeAccount && s != scopeZone {
			return c, fmt.Errorf("config: NotEntitled: unknown scope %q (want user, account or zone)", s)
		}
	}
	if c.RuleCap == 0 {
		c.RuleCap = DefaultRuleCap
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateWindow <= 0 {
		c.RateWindow = DefaultRateWindow
	}
	if c.Lockout <= 0 {
		c.Lockout = DefaultLockout
	}
	if c.MaxLists <= 0 {
		c.MaxLists = c.Plan.maxLists()
	}
	if c.MaxListItems <= 0 {
		c.MaxListItems = c.Plan.maxListItems()
	}
	if c.ListWriteRequests == 0 {
		c.ListWriteRequests = 30_000
	}
	if c.ListItemChanges == 0 {
		c.ListItemChanges = 1_000_000
	}
	if c.ListQuotaWindow <= 0 {
		c.ListQuotaWindow = DefaultListQuotaWindow
	}
	if c.BulkDelay == 0 {
		c.BulkDelay = DefaultBulkDelay
	}
	f := c.Faults
	for name, p := range map[string]float64{"Error5xx": f.Error5xx, "Applied5xx": f.Applied5xx, "Drop": f.Drop, "Malformed": f.Malformed} {
		if p < 0 || p > 1 {
			return c, fmt.Errorf("config: Faults.%s = %v is not a probability", name, p)
		}
	}
	if f.Burst429Every < 0 || f.Burst429Len < 0 {
		return c, errors.New("config: Faults.Burst429Every and Burst429Len must not be negative")
	}
	if f.Latency < 0 {
		return c, errors.New("config: Faults.Latency must not be negative")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

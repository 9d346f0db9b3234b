package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// PhaseCustom is the phase of a zone's WAF custom rules.
const PhaseCustom = "http_request_firewall_custom"

// Ruleset is a zone ruleset with its rules, in order.
type Ruleset struct {
	ID    string
	Name  string
	Kind  string
	Phase string
	Rules []RulesetRule
}

// RulesetRule is one rule of a ruleset, e.g. the custom rule
// {Description: "edgeban", Expression: "ip.src in $f2b_banned", Action: "block", Enabled: true}.
type RulesetRule struct {
	ID          string // assigned by Cloudflare
	Description string
	Expression  string
	Action      string // block, managed_challenge, challenge, js_challenge, log or skip
	Ref         string // stable reference, kept across edits
	Enabled     bool
}

type wireRulesetRule struct {
	ID          string `json:"id,omitempty"`
	Description string `json:"description"`
	Expression  string `json:"expression"`
	Action      string `json:"action"`
	Ref         string `json:"ref,omitempty"`
	Enabled     bool   `json:"enabled"`
}

type wireRuleset struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Phase       string            `json:"phase"`
	Rules       []wireRulesetRule `json:"rules"`
	LastUpdated cfTime            `json:"last_updated"`
}

func (w wireRuleset) ruleset() Ruleset {
	rs := Ruleset{ID: w.ID, Name: w.Name, Kind: w.Kind, Phase: w.Phase}
	for _, r := range w.Rules {
		rs.Rules = append(rs.Rules, RulesetRule(r))
	}
	return rs
}

func zonePath(zone string) (string, error) {
	return idPath("/zones/", "zone", zone)
}

func validPhase(phase string) error {
	if phase == "" || strings.Trim(phase, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return fmt.Errorf("cloudflare: invalid ruleset phase %q", phase)
	}
	return nil
}

func entrypointPath(zone, phase string) (string, error) {
	p, err := zonePath(zone)
	if err != nil {
		return "", err
	}
	if err := validPhase(phase); err != nil {
		return "", err
	}
	return p + "/rulesets/phases/" + phase + "/entrypoint", nil
}

func (c *Client) ruleset(ctx context.Context, method, path string, body any) (Ruleset, error) {
	var w wireRuleset
	if err := c.send(ctx, method, path, body, &w); err != nil {
		return Ruleset{}, err
	}
	if w.ID == "" {
		return Ruleset{}, fmt.Errorf("cloudflare: %s %s: success without a ruleset id", method, path)
	}
	return w.ruleset(), nil
}

// EntrypointRuleset returns the zone's entry-point ruleset of a phase
// (usually PhaseCustom). When the zone has none yet, the error satisfies
// IsNotFound.
func (c *Client) EntrypointRuleset(ctx context.Context, zone, phase string) (Ruleset, error) {
	path, err := entrypointPath(zone, phase)
	if err != nil {
		return Ruleset{}, err
	}
	return c.ruleset(ctx, http.MethodGet, path, nil)
}

// PutEntrypointRuleset creates or replaces the entry-point ruleset of a
// phase with exactly rules. It replaces every rule of the phase, including
// rules that users made themselves: call it only when EntrypointRuleset
// reported that none exists, and use CreateRulesetRule otherwise.
func (c *Client) PutEntrypointRuleset(ctx context.Context, zone, phase string, rules []RulesetRule) (Ruleset, error) {
	path, err := entrypointPath(zone, phase)
	if err != nil {
		return Ruleset{}, err
	}
	body := struct {
		Rules []wireRulesetRule `json:"rules"`
	}{make([]wireRulesetRule, 0, len(rules))}
	for _, r := range rules {
		if err := validRulesetRule(r); err != nil {
			return Ruleset{}, err
		}
		body.Rules = append(body.Rules, wireRulesetRule(r))
	}
	return c.ruleset(ctx, http.MethodPut, path, body)
}

// CreateRulesetRule appends r to the end of ruleset rulesetID and returns
// the updated ruleset. Find an existing rule by Description or Ref first,
// so as not to create it twice. Unlike other calls, it is retried only
// after a rate-limit answer: Cloudflare does not reject a second identical
// rule, so after a timeout or 5xx the caller must re-read the ruleset
// before trying again.
func (c *Client) CreateRulesetRule(ctx context.Context, zone, rulesetID string, r RulesetRule) (Ruleset, error) {
	p, err := zonePath(zone)
	if err != nil {
		return Ruleset{}, err
	}
	if err := checkID("ruleset", rulesetID); err != nil {
		return Ruleset{}, err
	}
	if err := validRulesetRule(r); err != nil {
		return Ruleset{}, err
	}
	r.ID = "" // assigned by Cloudflare
	path := p + "/rulesets/" + rulesetID + "/rules"
	var w wireRuleset
	if _, err := c.do(ctx, request{method: http.MethodPost, path: path, body: wireRulesetRule(r), notIdempotent: true}, &w); err != nil {
		return Ruleset{}, err
	}
	if w.ID == "" {
		return Ruleset{}, fmt.Errorf("cloudflare: POST %s: success without a ruleset id", path)
	}
	return w.ruleset(), nil
}

func validRulesetRule(r RulesetRule) error {
	if r.Expression == "" || r.Action == "" {
		return errors.New("cloudflare: ruleset rule needs an expression and an action")
	}
	return nil
}

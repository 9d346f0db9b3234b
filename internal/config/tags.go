package config

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxTagReplacements bounds how often one <tag> may be replaced inside
// one value, as fail2ban bounds it, so that tags referring to each other
// are reported instead of growing without end.
const MaxTagReplacements = 25

// tagRef is a <tag> reference: no space and no angle bracket inside.
var tagRef = regexp.MustCompile(`<([^ <>]+)>`)

// Tags is a set of named values whose <name> references can be replaced
// in each other by SubstituteTags: the options of a filter or an action
// definition together with the parameters a jail gives it.
type Tags struct {
	names  []string
	values map[string]string
}

// NewTags returns an empty set.
func NewTags() *Tags { return &Tags{values: map[string]string{}} }

// Set sets name to value, keeping the name's first place in the order.
func (t *Tags) Set(name, value string) {
	if _, ok := t.values[name]; !ok {
		t.names = append(t.names, name)
	}
	t.values[name] = value
}

// Get returns the value of name and whether it is set.
func (t *Tags) Get(name string) (string, bool) {
	v, ok := t.values[name]
	return v, ok
}

// Names returns the names in the order they were first set.
func (t *Tags) Names() []string { return append([]string(nil), t.names...) }

// Clone returns an independent copy of t.
func (t *Tags) Clone() *Tags {
	c := &Tags{names: append([]string(nil), t.names...), values: make(map[string]string, len(t.values))}
	for k, v := range t.values {
		c.values[k] = v
	}
	return c
}

// SubstituteOptions controls SubstituteTags.
type SubstituteOptions struct {
	// Conditional, such as "family=inet6", makes a reference <x> take
	// the value of "x?family=inet6" when the set has one.
	Conditional string
	// Ignore lists names that are neither substituted nor replaced.
	Ignore []string
	// Lookup, when set, supplies the value of a referenced name the set
	// lacks (fail2ban looks it up among the definition's options).
	Lookup func(name string) (string, bool)
}

// SubstituteTags replaces <name> references in every value of t by the
// value of name, recursively, as fail2ban's substituteRecursiveTags does:
// a reference may be built from others (<mdre-<mode>>), a reference to a
// name that has no value (such as <HOST>, or <STDIN> in a shell command)
// stays as it is, and a value referring to itself, directly or through
// others, is an error. t is not modified.
func SubstituteTags(t *Tags, opts SubstituteOptions) (*Tags, error) {
	out := t.Clone()
	ignore := make(map[string]bool, len(opts.Ignore))
	for _, n := range opts.Ignore {
		ignore[n] = true
	}
	done := map[string]bool{}
	counts := map[string]map[string]int{} // per value: references replaced so far
	for again := true; again; {
		again = false
		for _, name := range out.names {
			if ignore[name] || done[name] {
				continue
			}
			orig := out.values[name]
			value := orig
			replaced := counts[name]
			if replaced == nil {
				replaced = map[string]int{}
			}
			for from := 0; from <= len(value); {
				loc := tagRef.FindStringSubmatchIndex(value[from:])
				if loc == nil {
					break
				}
				start, end := from+loc[0], from+loc[1]
				ref := value[from+loc[2] : from+loc[3]]
				if ignore[ref] {
					from = end
					continue
				}
				n, seen := replaced[ref]
				if !seen {
					n = 1
				}
				if ref == name || n > MaxTagReplacements {
					return nil, fmt.Errorf("option %q refers to itself through <%s> and cannot be resolved: %q", name, ref, truncate(value))
				}
				repl, ok := "", false
				if opts.Conditional != "" {
					repl, ok = out.values[ref+"?"+opts.Conditional]
				}
				if !ok {
					repl, ok = out.values[ref]
				}
				if !ok && opts.Lookup != nil {
					repl, ok = opts.Lookup(ref)
				}
				if !ok {
					from = end
					continue
				}
				value = strings.ReplaceAll(value, "<"+ref+">", repl)
				if len(value) > MaxResolvedSize {
					return nil, fmt.Errorf("option %q: %w (over %d bytes)", name, ErrResolvedTooLarge, MaxResolvedSize)
				}
				replaced[ref]++
				from = start
			}
			if value != orig {
				if tagRef.MatchString(value) {
					counts[name] = replaced
					again = true
				}
				out.values[name] = value
			}
			if !strings.Contains(value, "<") {
				done[name] = true
			}
		}
	}
	return out, nil
}

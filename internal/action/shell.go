package action

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/config"
)

// Ticket is what a ban tells an action: the values of fail2ban's ticket
// tags.
type Ticket struct {
	IP       string
	Time     time.Time     // when the ban was decided
	BanTime  time.Duration // < 0: permanent
	BanCount int
	Failures int
	// Matches are the log lines of the failures; IPMatches those of the
	// address in every jail, IPJailMatches those in this jail.
	Matches, IPMatches, IPJailMatches []string
	// Fields are the filter's groups by fail2ban's names ("user", "fid").
	Fields   map[string]string
	Restored bool
}

// Family is fail2ban's family of the ticket's address: "inet4" or
// "inet6" ("inet4" for an id that is no address, as fail2ban).
func (t Ticket) Family() string {
	if a, err := netip.ParseAddr(t.IP); err == nil && a.Unmap().Is6() {
		return "inet6"
	}
	return "inet4"
}

// values returns the ticket's tags and their values.
func (t Ticket) values() map[string]string {
	restored := "0"
	if t.Restored {
		restored = "1"
	}
	bantime := strconv.FormatInt(int64(t.BanTime/time.Second), 10)
	if t.BanTime < 0 {
		bantime = "-1"
	}
	return map[string]string{
		"ip": t.IP, "fid": t.IP, "family": t.Family(),
		"time": strconv.FormatInt(t.Time.Unix(), 10), "bantime": bantime,
		"bancount": strconv.Itoa(t.BanCount), "failures": strconv.Itoa(t.Failures),
		"matches": strings.Join(t.Matches, "\n"), "ipmatches": strings.Join(t.IPMatches, "\n"),
		"ipjailmatches": strings.Join(t.IPJailMatches, "\n"), "restored": restored,
	}
}

// Shell runs an action.d definition's commands, as fail2ban's command
// action does: started when the jail starts (or, for an action with
// ?family= variants, when the first ban of a family comes), each ban and
// unban run with the ticket's tags, a failed ban checked with
// actioncheck and repaired before one more try, flushed and stopped when
// the jail stops. It is safe for concurrent use.
type Shell struct {
	def        *Definition
	timeout    time.Duration
	onDemand   bool
	noRestored bool

	runner Runner // runs the commands, with a shell started ahead

	mu       sync.Mutex
	commands map[string]map[string]string // family -> command -> text, tags resolved
	started  map[string]bool              // families started
	holds    map[string]bool              // families with bans to flush
}

// NewShell returns the runner of def. Its timeout option (seconds)
// bounds each command, DefaultTimeout otherwise.
func NewShell(def *Definition) (*Shell, error) {
	s := &Shell{def: def, timeout: DefaultTimeout, commands: map[string]map[string]string{},
		started: map[string]bool{}, holds: map[string]bool{}}
	if v, ok := def.Tags.Get("timeout"); ok && strings.TrimSpace(v) != "" {
		secs, err := config.Seconds(v)
		if err != nil || secs <= 0 {
			return nil, fmt.Errorf("action %s: option \"timeout\": %q is not a positive time", def.Name, v)
		}
		s.timeout = time.Duration(secs * float64(time.Second))
	}
	for _, n := range def.Tags.Names() {
		if strings.Contains(n, "?family=") {
			s.onDemand = true
		}
	}
	if v, ok := def.Tags.Get("actionstart_on_demand"); ok && strings.TrimSpace(v) != "" {
		b, err := config.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("action %s: option \"actionstart_on_demand\": %w", def.Name, err)
		}
		s.onDemand = b
	}
	if v, ok := def.Tags.Get("norestored"); ok && strings.TrimSpace(v) != "" {
		b, err := config.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("action %s: option \"norestored\": %w", def.Name, err)
		}
		s.noRestored = b
	}
	for _, family := range []string{"inet4", "inet6"} {
		if _, err := s.resolved(family); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Name is the action's name in its jail.
func (s *Shell) Name() string { return s.def.Name }

// NoRestored reports the action's norestored option: bans restored at
// start are not sent to it again (a mail, say, or an action whose bans
// outlive the daemon).
func (s *Shell) NoRestored() bool { return s.noRestored }

// resolved returns the commands with their definition tags resolved for
// family; the ticket's tags are left for Prepare.
func (s *Shell) resolved(family string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.commands[family]; ok {
		return c, nil
	}
	tags, err := config.SubstituteTags(s.def.Tags, config.SubstituteOptions{Conditional: "family=" + family})
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", s.def.Name, err)
	}
	c := map[string]string{}
	for _, name := range Commands {
		if v, ok := tags.Get(name); ok && strings.TrimSpace(v) != "" {
			c[name] = v
		}
	}
	s.commands[family] = c
	return c, nil
}

// run runs command name for family with the ticket's values (nil: none).
// A command the action does not set succeeds.
func (s *Shell) run(ctx context.Context, name, family string, t *Ticket) error {
	cmds, err := s.resolved(family)
	if err != nil {
		return err
	}
	text, ok := cmds[name]
	if !ok {
		return nil
	}
	values := map[string]string{"family": family}
	var fields map[string]string
	if t != nil {
		values, fields = t.values(), t.Fields
	}
	// A new ban gets the shell started ahead; the rest (restored bans,
	// unbans, checks) start their own, and leave it to the next ban.
	run := Run
	if name == "actionban" && t != nil && !t.Restored {
		run = s.runner.Run
	}
	if _, err := run(ctx, Prepare(text, values, fields), s.timeout); err != nil {
		return fmt.Errorf("action %s: %s: %w", s.def.Name, name, err)
	}
	return nil
}

// Start runs actionstart, unless the action starts per family on demand,
// and has a shell started ahead for the first ban (see Runner).
func (s *Shell) Start(ctx context.Context) error {
	s.runner.Warm()
	if s.onDemand {
		return nil
	}
	if err := s.run(ctx, "actionstart", "inet4", nil); err != nil {
		return err
	}
	s.setFlag(s.started, "inet4")
	return nil
}

// flag reads m[family] under the lock; setFlag sets it. m is s.started or
// s.holds, which are never replaced, only cleared.
func (s *Shell) flag(m map[string]bool, family string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[family]
}

func (s *Shell) setFlag(m map[string]bool, family string) {
	s.mu.Lock()
	m[family] = true
	s.mu.Unlock()
}

// startFamily runs actionstart for the ticket's family when the action
// starts on demand and that family has not started.
func (s *Shell) startFamily(ctx context.Context, family string) error {
	if !s.onDemand || s.flag(s.started, family) {
		return nil
	}
	if err := s.run(ctx, "actionstart", family, nil); err != nil {
		return err
	}
	s.setFlag(s.started, family)
	return nil
}

// Ban runs actionban (actionreban for a restored ban when the action has
// one) for t. When it fails, actioncheck runs; if the check fails too,
// actionrepair runs (or actionstop and actionstart when there is none),
// and the ban is tried once more.
func (s *Shell) Ban(ctx context.Context, t Ticket) error {
	family := t.Family()
	if err := s.startFamily(ctx, family); err != nil {
		return err
	}
	cmd := "actionban"
	if cmds, _ := s.resolved(family); t.Restored && cmds["actionreban"] != "" {
		cmd = "actionreban"
	}
	err := s.run(ctx, cmd, family, &t)
	if err != nil {
		if s.run(ctx, "actioncheck", family, &t) != nil {
			if cmds, _ := s.resolved(family); cmds["actionrepair"] != "" {
				if rerr := s.run(ctx, "actionrepair", family, &t); rerr != nil {
					return fmt.Errorf("%w; then %v", err, rerr)
				}
			} else {
				s.run(ctx, "actionstop", family, nil)
				if serr := s.run(ctx, "actionstart", family, nil); serr != nil {
					return fmt.Errorf("%w; then %v", err, serr)
				}
			}
		}
		if err = s.run(ctx, cmd, family, &t); err != nil {
			return err
		}
	}
	s.setFlag(s.holds, family)
	return nil
}

// Unban runs actionunban for t, if the action banned in t's family.
func (s *Shell) Unban(ctx context.Context, t Ticket) error {
	family := t.Family()
	if !s.flag(s.holds, family) {
		return nil
	}
	return s.run(ctx, "actionunban", family, &t)
}

// Stop runs actionflush for the families with bans, when the action has
// one, then actionstop for the families started, and ends the shell
// started ahead.
func (s *Shell) Stop(ctx context.Context) error {
	s.mu.Lock()
	var flush, stop []string
	for _, f := range []string{"inet4", "inet6"} {
		if s.holds[f] {
			flush = append(flush, f)
		}
		if s.started[f] {
			stop = append(stop, f)
		}
	}
	clear(s.holds) // in place: flag and setFlag read the maps without the lock
	clear(s.started)
	s.mu.Unlock()
	var errs []string
	for _, f := range flush {
		if err := s.run(ctx, "actionflush", f, nil); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, f := range stop {
		if err := s.run(ctx, "actionstop", f, nil); err != nil {
			errs = append(errs, err.Error())
		}
	}
	s.runner.Close()
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

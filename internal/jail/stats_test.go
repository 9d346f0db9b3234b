package jail

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// waitStats waits until the jail's stats are want, or fails showing the
// last ones. The failed bans of an action named "broken" are tried again
// from a second on: more of them than wanted are fine.
func waitStats(t *testing.T, j *Jail, want Stats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := j.Stats()
		for i, a := range got.Actions {
			if a.Name == "broken" && i < len(want.Actions) && a.BanErrors > want.Actions[i].BanErrors {
				got.Actions[i].BanErrors = want.Actions[i].BanErrors
			}
		}
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats\n got %+v\nwant %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStats feeds a jail with real actions lines and bans, and checks
// what its stats count at each step; a jail that takes over the
// counters (as after a reload) goes on from them.
func TestStats(t *testing.T) {
	tj := newTestJail(t)
	broken := "[Definition]\nactionban = exit 3\n"
	if err := os.WriteFile(filepath.Join(tj.dir, "action.d", "broken.conf"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Counters{}
	j, stop := tj.startWith(t, time.Hour, c, "note", "mail", "broken")
	<-j.Ready()
	ctx := context.Background()
	steps := []struct {
		name string
		do   func(t *testing.T)
		want Stats
	}{
		{"nothing yet", func(*testing.T) {}, Stats{Jail: "sshd", Actions: []ActionStats{{Name: "note"}, {Name: "mail"}, {Name: "broken"}}}},
		{"lines, an ignored address, a ban, a failure of the banned address", func(t *testing.T) {
			tj.write(t,
				"auth failure for root from 192.0.2.1",
				"auth failure for root from 127.0.0.1", // ignoreip
				"session opened for root",              // no failure
				"auth failure for admin from 192.0.2.1",
				"auth failure for x from 192.0.2.1", // the third: banned
				"auth failure for y from 192.0.2.1", // counted, already banned
			)
			tj.waitCalls(t, "ban 192.0.2.1 0")
		}, Stats{Jail: "sshd", LinesRead: 6, LinesMatched: 5, Failures: 4, Ignored: 1, Bans: 1, Active: 1,
			Queue:   1, // broken's ban, to retry
			Actions: []ActionStats{{Name: "note", Bans: 1}, {Name: "mail", Bans: 1}, {Name: "broken", BanErrors: 1}}}},
		{"a ban by hand", func(t *testing.T) {
			if err := j.BanIP(ctx, "198.51.100.9"); err != nil {
				t.Fatal(err)
			}
		}, Stats{Jail: "sshd", LinesRead: 6, LinesMatched: 5, Failures: 4, Ignored: 1, Bans: 2, Active: 2, Queue: 2,
			Actions: []ActionStats{{Name: "note", Bans: 2}, {Name: "mail", Bans: 2}, {Name: "broken", BanErrors: 2}}}},
		{"an unban: its retry is no longer waiting", func(t *testing.T) {
			if err := j.UnbanIP(ctx, "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
		}, Stats{Jail: "sshd", LinesRead: 6, LinesMatched: 5, Failures: 4, Ignored: 1, Bans: 2, Active: 1, Queue: 1,
			Actions: []ActionStats{{Name: "note", Bans: 2, Unbans: 1}, {Name: "mail", Bans: 2, Unbans: 1}, {Name: "broken", BanErrors: 2, Unbans: 1}}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			waitStats(t, j, s.want)
		})
	}
	stop()

	// The jail that replaces it, without the broken action, takes the
	// counters over: the restored ban is not a new ban, but its action
	// ran again (mail has norestored).
	j2, stop2 := tj.startWith(t, time.Hour, c, "note", "mail")
	defer stop2()
	tj.waitCalls(t, "ban 198.51.100.9 1")
	waitStats(t, j2, Stats{Jail: "sshd", LinesRead: 6, LinesMatched: 5, Failures: 4, Ignored: 1, Bans: 2, Active: 1,
		Actions: []ActionStats{{Name: "note", Bans: 3, Unbans: 1}, {Name: "mail", Bans: 2, Unbans: 1}}})
	tj.write(t, "auth failure for z from 203.0.113.5")
	waitStats(t, j2, Stats{Jail: "sshd", LinesRead: 7, LinesMatched: 6, Failures: 5, Ignored: 1, Bans: 2, Active: 1,
		Actions: []ActionStats{{Name: "note", Bans: 3, Unbans: 1}, {Name: "mail", Bans: 2, Unbans: 1}}})

	// A jail with counters of its own starts from zero.
	if st := New(Settings{Name: "other", Actions: j2.s.Actions}).Stats(); st.LinesRead != 0 || st.Actions[0].Bans != 0 {
		t.Fatalf("fresh counters: %+v", st)
	}
}

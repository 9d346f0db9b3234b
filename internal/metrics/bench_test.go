package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/daemon"
	"github.com/edgeban/edgeban/internal/store"
)

// BenchmarkGather measures one scrape of a daemon whose Cloudflare outbox
// holds 100,000 bans at one destination, 1,000 of them still to send and
// failing: the jails' stats, the outbox's per destination and the health
// (the database's ping and the query for stuck deliveries), then the Go
// and process collectors.
func BenchmarkGather(b *testing.B) {
	const n, pending = 100_000, 1_000
	dir := b.TempDir()
	files := map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = true\n",
		"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = " + filepath.Join(dir, "app.log") + "\n",
		"app.log":            "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "edgeban.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	dest, err := db.Destination(ctx, "bench", []byte(`{"scope":"zone","zone":"example.com"}`))
	if err != nil {
		b.Fatal(err)
	}
	holds := make([]store.Hold, n)
	results := make([]store.Result, 0, n-pending)
	for i := range holds {
		ip := fmt.Sprintf("100.%d.%d.%d", 64+i>>16, i>>8&0xff, i&0xff)
		holds[i] = store.Hold{Dest: dest, Target: ip, Jail: "app", IP: ip}
		if i >= pending {
			results = append(results, store.Result{Dest: dest, Target: ip, Have: true, RemoteID: fmt.Sprint(i), Op: "ban", Outcome: "created"})
		}
	}
	if _, err := db.Ban(ctx, holds...); err != nil {
		b.Fatal(err)
	}
	es, err := db.Claim(ctx, "bench", store.ClaimFilter{Limit: n}, time.Hour)
	if err != nil || len(es) != n {
		b.Fatalf("claimed %d: %v", len(es), err)
	}
	if _, err := db.Complete(ctx, "bench", results...); err != nil {
		b.Fatal(err)
	}
	for _, h := range holds[:pending] {
		if err := db.Fail(ctx, "bench", dest, h.Target, "HTTP 503", time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	d, err := daemon.Load(dir, daemon.Options{Store: db, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	reg, err := NewRegistry(d, NewCloudflare(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	st, err := d.Stats(ctx)
	if err != nil || len(st.Cloudflare) != 1 || st.Cloudflare[0].Live != n-pending || st.Cloudflare[0].Failing != pending {
		b.Fatalf("outbox: %+v %v", st.Cloudflare, err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

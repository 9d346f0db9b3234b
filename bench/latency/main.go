// Command latency measures what bench/latency.sh reports: how long a ban
// takes from a log line being written to the jail's shell actionban having
// run, and how fast edgeban serve starts with many bans to restore.
//
//	latency lines   -log FILE -out FILE [-n 200] [-pause 50ms] [-csv FILE]
//	latency seed    -db FILE -jail NAME [-n 100000]
//	latency startup -bin EDGEBAN -conf DIR -socket PATH -jail NAME -log FILE -out FILE [-n 100000] [-during 50] [-csv FILE]
//
// lines appends -n lines, each with a new address (198.18.0.0/15), one at
// a time: it takes
// the time just before it writes a line, and the time the address shows
// up in -out, the file the action appends the address to, which it
// watches with fsnotify (inotify; no polling). It waits for each ban
// before the pause that precedes the next line, so every figure is one
// ban of an otherwise idle daemon.
//
// seed writes -n active bans of the jail into edgeban's database at once.
//
// startup starts edgeban serve over a seeded database and reports when the
// socket answers, when "edgeban status JAIL --json" lists every seeded
// ban (ready), the latency of new bans while the restored ones are being
// applied again, when the action has run for every restored ban, and the
// daemon's RSS (VmRSS at ready, VmHWM at the end).
//
// Each subcommand prints one line of key=value figures on stdout for the
// script, and progress on stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/edgeban/edgeban/internal/control"
	"github.com/edgeban/edgeban/internal/store"
)

// Address ranges, documentation and benchmarking ones only: new offenders
// come from 198.18.0.0/15, restored bans from 100.64.0.0/10. They are only
// text here; nothing is sent to them.
var (
	offenders = netip.MustParseAddr("198.18.0.1")
	restored  = netip.MustParsePrefix("100.64.0.0/10")
)

// nth returns the address n after base.
func nth(base netip.Addr, n int) netip.Addr {
	a := base.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: latency lines|seed|startup [flags] (see the doc comment)")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "lines":
		err = runLines(ctx, os.Args[2:])
	case "seed":
		err = runSeed(ctx, os.Args[2:])
	case "startup":
		err = runStartup(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// banWatch reports the addresses appended to the action's output file,
// each with the time its inotify event was received.
type banWatch struct {
	w    *fsnotify.Watcher
	f    *os.File
	off  int64
	part []byte
	C    chan seen
}

type seen struct {
	ip string
	at time.Time
}

func watchBans(path string) (*banWatch, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := w.Add(path); err != nil {
		w.Close()
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bw := &banWatch{w: w, f: f, off: fi.Size(), C: make(chan seen, 1<<16)}
	go bw.run()
	return bw, nil
}

func (bw *banWatch) run() {
	buf := make([]byte, 1<<16)
	for {
		select {
		case _, ok := <-bw.w.Events:
			if !ok {
				return
			}
			at := time.Now() // the event, before the read
			for {
				n, err := bw.f.ReadAt(buf, bw.off)
				bw.off += int64(n)
				data := append(bw.part, buf[:n]...)
				for {
					i := bytes.IndexByte(data, '\n')
					if i < 0 {
						break
					}
					bw.C <- seen{ip: string(bytes.TrimSpace(data[:i])), at: at}
					data = data[i+1:]
				}
				bw.part = append(bw.part[:0], data...)
				if err != nil || n < len(buf) {
					break
				}
			}
		case err, ok := <-bw.w.Errors:
			if !ok {
				return
			}
			fmt.Fprintln(os.Stderr, "latency: fsnotify:", err)
		}
	}
}

func (bw *banWatch) Close() {
	bw.w.Close()
	bw.f.Close()
}

// stats are a run's latencies, in the order of the lines, -1 for a line
// whose ban never came.
type stats []time.Duration

// pct is the q-quantile by nearest rank.
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1e3, 'f', 3, 64) }

// summary is the key=value line of a run.
func (s stats) summary(prefix string) string {
	var ok []time.Duration
	for _, d := range s {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	slices.Sort(ok)
	var sum time.Duration
	for _, d := range ok {
		sum += d
	}
	mean := time.Duration(0)
	if len(ok) > 0 {
		mean = sum / time.Duration(len(ok))
	}
	return fmt.Sprintf("%sn=%d %smissed=%d %sp50_ms=%s %sp90_ms=%s %sp99_ms=%s %smax_ms=%s %smean_ms=%s",
		prefix, len(ok), prefix, len(s)-len(ok), prefix, ms(pct(ok, .5)), prefix, ms(pct(ok, .9)),
		prefix, ms(pct(ok, .99)), prefix, ms(pct(ok, 1)), prefix, ms(mean))
}

// writeLines appends n failure lines, addresses first, first+1, ... after
// offenders, and measures each ban; csv, if set, gets one row per line.
// Bans of other addresses that show up meanwhile go to other.
func writeLines(logPath string, bw *banWatch, first, n int, pause, timeout time.Duration, csv io.Writer, other func(seen)) (stats, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	out := make(stats, n)
	for i := range n {
		ip := nth(offenders, first+i).String()
		line := time.Now().Format("2006-01-02 15:04:05") + " login failed for bench from " + ip + "\n"
		t0 := time.Now()
		if _, err := logf.WriteString(line); err != nil {
			return nil, err
		}
		out[i] = -1
		deadline := time.NewTimer(timeout)
	wait:
		for {
			select {
			case s := <-bw.C:
				if s.ip == ip {
					out[i] = s.at.Sub(t0)
					break wait
				}
				if other != nil {
					other(s)
				}
			case <-deadline.C:
				fmt.Fprintf(os.Stderr, "latency: no ban of %s within %v\n", ip, timeout)
				break wait
			}
		}
		deadline.Stop()
		if csv != nil {
			fmt.Fprintf(csv, "%d,%s,%s\n", i+1, ip, ms(out[i]))
		}
		// A pause of pause/2 to 3*pause/2, so that the lines do not keep
		// one phase with a timer in the daemon.
		time.Sleep(pause/2 + rand.N(pause+1))
	}
	return out, nil
}

func runLines(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("lines", flag.ExitOnError)
	logPath := fs.String("log", "", "the jail's log file")
	outPath := fs.String("out", "", "the file the action appends the address to")
	n := fs.Int("n", 200, "lines, one ban each")
	first := fs.Int("first", 0, "index of the first address after 198.18.0.1")
	pause := fs.Duration("pause", 50*time.Millisecond, "mean pause between a ban and the next line")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for one ban")
	csvPath := fs.String("csv", "", "write line,ip,latency_ms rows here")
	fs.Parse(args)
	if *logPath == "" || *outPath == "" {
		return errors.New("lines: -log and -out are required")
	}
	bw, err := watchBans(*outPath)
	if err != nil {
		return err
	}
	defer bw.Close()
	csv, closeCSV, err := openCSV(*csvPath)
	if err != nil {
		return err
	}
	defer closeCSV()
	s, err := writeLines(*logPath, bw, *first, *n, *pause, *timeout, csv, nil)
	if err != nil {
		return err
	}
	fmt.Println(s.summary(""))
	return nil
}

func runSeed(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	dbPath := fs.String("db", "", "edgeban's database")
	jailName := fs.String("jail", "", "the jail")
	n := fs.Int("n", 100000, "active bans")
	bantime := fs.Duration("bantime", 24*time.Hour, "their bantime (from now)")
	fs.Parse(args)
	if *dbPath == "" || *jailName == "" {
		return errors.New("seed: -db and -jail are required")
	}
	db, err := store.Open(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().Truncate(time.Millisecond)
	bans := make([]store.JailBan, *n)
	for i := range bans {
		// Spread over the last hour, as bans piled up over time.
		at := now.Add(-time.Duration(*n-i) * time.Hour / time.Duration(*n))
		bans[i] = store.JailBan{Jail: *jailName, IP: nth(restored.Addr(), i+1).String(), At: at, BanTime: *bantime,
			BanCount: 1, Data: `{"failures":1,"matches":["` + at.Format("2006-01-02 15:04:05") + ` login failed for bench"]}`}
	}
	t0 := time.Now()
	if err := db.AddJailBans(ctx, bans); err != nil {
		return err
	}
	seed := time.Since(t0)
	if err := db.Close(); err != nil {
		return err
	}
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(*dbPath + suffix); err == nil {
			size += fi.Size()
		}
	}
	fmt.Printf("seeded=%d seed_s=%.2f db_mb=%.1f\n", *n, seed.Seconds(), float64(size)/(1<<20))
	return nil
}

// procStatus reads a field of /proc/PID/status, in kB.
func procStatus(pid int, field string) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

func runStartup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	bin := fs.String("bin", "", "the edgeban binary")
	conf := fs.String("conf", "", "configuration directory")
	sock := fs.String("socket", "", "control socket")
	jailName := fs.String("jail", "", "the jail with the seeded bans")
	logPath := fs.String("log", "", "the jail's log file")
	outPath := fs.String("out", "", "the file the action appends the address to")
	daemonLog := fs.String("daemon-log", os.DevNull, "where serve's stdout and stderr go")
	n := fs.Int("n", 100000, "bans seeded")
	during := fs.Int("during", 50, "new bans measured while the restored ones are applied")
	pause := fs.Duration("pause", 20*time.Millisecond, "mean pause between those")
	applyTimeout := fs.Duration("apply-timeout", 15*time.Minute, "how long to wait for the action of every restored ban")
	csvPath := fs.String("csv", "", "write line,ip,latency_ms rows of the new bans here")
	fs.Parse(args)
	if *bin == "" || *conf == "" || *sock == "" || *jailName == "" || *logPath == "" || *outPath == "" {
		return errors.New("startup: -bin, -conf, -socket, -jail, -log and -out are required")
	}
	bw, err := watchBans(*outPath)
	if err != nil {
		return err
	}
	defer bw.Close()
	dl, err := os.Create(*daemonLog)
	if err != nil {
		return err
	}
	defer dl.Close()

	cmd := exec.Command(*bin, "serve", "-c", *conf, "--socket", *sock)
	cmd.Stdout, cmd.Stderr = dl, dl
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	var waitErr error
	exited := make(chan struct{}) // closed once serve has exited
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
	}()
	alive := func() error {
		select {
		case <-exited:
			return fmt.Errorf("edgeban serve exited: %v (see %s)", waitErr, *daemonLog)
		default:
			return nil
		}
	}

	// The applied restored bans are counted from here on, in the
	// background of what follows.
	applied := 0
	var tApplied time.Duration
	count := func(s seen) {
		if a, err := netip.ParseAddr(s.ip); err == nil && restored.Contains(a) {
			applied++
			if applied == *n {
				tApplied = s.at.Sub(t0)
			}
		}
	}
	drain := func() {
		for {
			select {
			case s := <-bw.C:
				count(s)
			default:
				return
			}
		}
	}

	// 1. The socket answers.
	for {
		if err := alive(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := control.Call(cctx, *sock, "ping")
		cancel()
		if err == nil {
			break
		}
		if time.Since(t0) > time.Minute {
			return fmt.Errorf("the socket did not answer within a minute: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	tSocket := time.Since(t0)
	fmt.Fprintf(os.Stderr, "latency: socket answers after %v\n", tSocket.Round(time.Millisecond))

	// 2. edgeban status JAIL --json lists every seeded ban.
	var tReady time.Duration
	polls := 0
	for {
		if err := alive(); err != nil {
			return err
		}
		drain()
		out, err := exec.Command(*bin, "status", *jailName, "--json", "--socket", *sock).Output()
		polls++
		if err == nil {
			var st struct {
				Banned []json.RawMessage `json:"banned"`
			}
			if err := json.Unmarshal(out, &st); err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if len(st.Banned) >= *n {
				tReady = time.Since(t0)
				break
			}
		}
		if time.Since(t0) > 5*time.Minute {
			return errors.New("the status did not list every seeded ban within 5 minutes")
		}
	}
	rssReady := procStatus(pid, "VmRSS")
	drain()
	fmt.Fprintf(os.Stderr, "latency: ready after %v (%d status calls), RSS %d MB, %d restored bans applied so far\n",
		tReady.Round(time.Millisecond), polls, rssReady/1024, applied)

	// 3. New bans while the restored ones are applied.
	csv, closeCSV, err := openCSV(*csvPath)
	if err != nil {
		return err
	}
	defer closeCSV()
	s, err := writeLines(*logPath, bw, 0, *during, *pause, 10*time.Second, csv, count)
	if err != nil {
		return err
	}
	appliedAfterDuring := applied

	// 4. Every restored ban applied.
	deadline := time.After(*applyTimeout)
	for applied < *n {
		select {
		case s := <-bw.C:
			count(s)
		case <-deadline:
			return fmt.Errorf("after %v, the action ran for %d of %d restored bans", *applyTimeout, applied, *n)
		case <-exited:
			return alive()
		}
	}
	hwm, rss := procStatus(pid, "VmHWM"), procStatus(pid, "VmRSS")
	fmt.Fprintf(os.Stderr, "latency: every restored ban applied after %v; peak RSS %d MB\n", tApplied.Round(time.Millisecond), hwm/1024)

	// 5. Stop.
	tStop := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		return errors.New("edgeban serve did not stop within a minute of SIGTERM")
	}
	fmt.Printf("socket_s=%.3f ready_s=%.3f rss_ready_mb=%.1f applied_s=%.3f applied_after_during=%d rss_end_mb=%.1f peak_rss_mb=%.1f stop_s=%.3f %s\n",
		tSocket.Seconds(), tReady.Seconds(), float64(rssReady)/1024, tApplied.Seconds(), appliedAfterDuring,
		float64(rss)/1024, float64(hwm)/1024, time.Since(tStop).Seconds(), s.summary("during_"))
	return nil
}

// openCSV creates the per-ban CSV file at path with its header; with path
// "" it returns a nil writer, which records nothing.
func openCSV(path string) (io.Writer, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintln(f, "line,ip,latency_ms")
	return f, func() { f.Close() }, nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/edgeban/edgeban/internal/datetime"
	"github.com/edgeban/edgeban/internal/filter"
)

const regexUsage = `usage: edgeban regex [flags] LOG FILTER [IGNOREREGEX]

Tests a fail2ban filter against a log, as fail2ban-regex does.

LOG is a log file, or a single log line.
FILTER is a filter file (/etc/fail2ban/filter.d/sshd.conf), a filter name
looked up in CONFDIR/filter.d with fail2ban's options (sshd,
'sshd[mode=aggressive]', 'postfix[mode=more, prefregex="..."]'), or a
regex (with <HOST> and the other tags).
IGNOREREGEX is a regex; lines it matches are ignored.

Flags:
`

// regexFilterArg tells a filter reference from a literal regex, as
// fail2ban-regex does: a path or name, optionally with [options].
var regexFilterArg = regexp.MustCompile(`(?s)^/{0,3}[\w/_\-.]+(?:\[.*\])?$`)

// regexMemoryLimit is the heap the regex command lets the collector use
// before it works harder: well inside the 30 MB of RSS it is to stay
// under however long the log.
const regexMemoryLimit = 24 << 20

// regexGCPercent is the regex command's GOGC (see tuneGC).
const regexGCPercent = 130

// tuneGC sets the collector for a scan, which makes short-lived garbage
// fast. GOGC=130 with a soft limit of regexMemoryLimit: on a 1M-line
// auth.log it takes 0.52 s where Go's default GOGC=100 takes 0.58 s, with
// a peak RSS of 27 MB against 25 MB. GOGC=200 would save 2% more and
// reach 30 MB, since the binary itself (the metrics' Prometheus and
// protobuf packages among its dependencies) accounts for some 12 MB.
// GOGC or GOMEMLIMIT in the environment win.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(regexGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(regexMemoryLimit)
	}
}

func runRegex(ctx context.Context, c *cli, args []string) error {
	tuneGC(c.getenv)
	fs := flag.NewFlagSet("regex", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), regexUsage)
		fs.PrintDefaults()
	}
	var (
		confDir     = fs.String("c", "/etc/fail2ban", "fail2ban configuration `dir`ectory holding filter.d")
		asJSON      = fs.Bool("json", false, "print one JSON object per failure, then a summary object")
		tz          = fs.String("timezone", "", "time `zone` of dates written without one (UTC, UTC+0200, +0200, Europe/Paris); default local time")
		datepattern = fs.String("datepattern", "", "date `pattern` replacing the filter's ({^LN-BEG}, EPOCH, {NONE}, %Y-%m-%d %H:%M:%S...)")
		maxlines    = fs.Int("maxlines", 0, "size of the multi-line buffer, replacing the filter's")
		now         = fs.Float64("now", 0, "current time as Unix `seconds`, for the year of dates written without one and for {NONE}; default now")
		printMissed = fs.Bool("print-all-missed", false, "print every missed line")
		printMatch  = fs.Bool("print-all-matched", false, "print every matched line")
		printIgnore = fs.Bool("print-all-ignored", false, "print every ignored line")
		progress    = fs.Bool("progress", true, "show a progress bar on stderr for large files when stderr is a terminal")
	)
	fs.StringVar(tz, "TZ", "", "same as --timezone")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		fs.Usage()
		return usageError{"regex needs LOG and FILTER, and optionally IGNOREREGEX"}
	}
	logArg, filterArg := fs.Arg(0), fs.Arg(1)

	def, how, err := loadRegexFilter(*confDir, filterArg)
	if err != nil {
		return err
	}
	if fs.NArg() == 3 {
		def.IgnoreRegex = append(def.IgnoreRegex, fs.Arg(2))
	}
	cfg := filter.Config{CheckAll: true, DatePattern: *datepattern, MaxLines: *maxlines}
	if *tz != "" {
		loc, err := regexLocation(*tz)
		if err != nil {
			return usageError{fmt.Sprintf("--timezone %q: %v", *tz, err)}
		}
		cfg.Location = loc
	}
	if *now != 0 {
		sec := int64(*now)
		t := time.Unix(sec, int64((*now-float64(sec))*1e9))
		cfg.Now = func() time.Time { return t }
	}
	f, err := filter.New(def, cfg)
	if err != nil {
		return err
	}

	var (
		in   io.Reader
		size int64
		name = logArg
	)
	if fi, err := os.Stat(logArg); err == nil && !fi.IsDir() {
		file, err := os.Open(logArg)
		if err != nil {
			return err
		}
		defer file.Close()
		in, size = file, fi.Size()
	} else {
		in, name = strings.NewReader(logArg), "(single line)"
	}

	out := bufio.NewWriterSize(c.stdout, 64<<10)
	defer out.Flush()
	if !*asJSON {
		fmt.Fprintf(out, "\nRunning tests\n=============\n\n")
		fmt.Fprintf(out, "Use   failregex %s\n", how)
		if *datepattern != "" {
			fmt.Fprintf(out, "Use      datepattern : %s\n", *datepattern)
		}
		if *maxlines != 0 {
			fmt.Fprintf(out, "Use         maxlines : %d\n", *maxlines)
		}
		fmt.Fprintf(out, "Use         log file : %s\n", name)
		fmt.Fprintf(out, "Use         encoding : UTF-8 (bytes kept as they are)\n\n")
	}

	var report func(int64)
	if *progress && !*asJSON && size > 4<<20 {
		if fe, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(fe.Fd())) {
			report = progressBar(c.stderr, size)
		}
	}
	lists := &regexLines{max: 20, all: map[string]bool{"missed": *printMissed, "matched": *printMatch, "ignored": *printIgnore}}
	var enc *json.Encoder
	if *asJSON {
		enc = json.NewEncoder(out)
		enc.SetEscapeHTML(false)
	}
	start := time.Now()
	st, err := f.Scan(ctx, in, func(lr *filter.LineResult) error {
		if enc != nil {
			return writeFailures(enc, lr)
		}
		lists.add(lr)
		return nil
	}, report)
	elapsed := time.Since(start)
	if report != nil {
		fmt.Fprint(c.stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if enc != nil {
		return enc.Encode(map[string]any{"summary": map[string]int{
			"lines": st.Lines, "matched": st.Matched, "ignored": st.Ignored, "missed": st.Missed}})
	}
	printRegexSummary(out, f, st, elapsed, lists)
	return nil
}

// loadRegexFilter reads FILTER: a filter file or name with options, or a
// literal regex. how describes it for the header.
func loadRegexFilter(confDir, arg string) (*filter.Definition, string, error) {
	if regexFilterArg.MatchString(arg) {
		def, err := filter.Load(confDir, arg, filter.LoadOptions{Backend: "auto"})
		if err == nil {
			return def, fmt.Sprintf("filter file : %s, basedir: %s", def.Name, confDir), nil
		}
		if !strings.Contains(err.Error(), "no such filter") {
			return nil, "", err
		}
	}
	def := filter.Literal(arg)
	if len(def.FailRegex) == 0 {
		return nil, "", usageError{"FILTER is empty"}
	}
	return def, "string : " + arg, nil
}

// regexLocation reads --timezone: fail2ban's UTC[+-]HHMM forms, or an
// IANA zone name.
func regexLocation(s string) (*time.Location, error) {
	if off, err := datetime.ZoneOffset(s); err == nil {
		return time.FixedZone(s, int(off/time.Second)), nil
	}
	return time.LoadLocation(s)
}

// writeFailures prints the failures of one line as JSON objects.
func writeFailures(enc *json.Encoder, lr *filter.LineResult) error {
	if lr.Ignored {
		return nil
	}
	for _, fl := range lr.Failures {
		if fl.NoFail || fl.Pending {
			continue
		}
		fields := make(map[string]any, len(fl.Fields)+1)
		for k, v := range fl.Fields {
			fields[k] = v
		}
		if fl.Users != nil {
			users := append([]string(nil), fl.Users...)
			sort.Strings(users)
			fields["users"] = users
		}
		if fl.Host != "" {
			fields["ip"] = fl.Host
		}
		var t any
		if !fl.Time.IsZero() {
			// Seconds with the fraction the log gave, written exactly.
			t = json.Number(unixSeconds(fl.Time))
		}
		matches := fl.Matches
		if matches == nil {
			matches = []string{}
		}
		if err := enc.Encode(struct {
			Line    int            `json:"line"`
			ID      string         `json:"id"`
			Time    any            `json:"time"`
			Matches []string       `json:"matches"`
			Fields  map[string]any `json:"fields"`
		}{lr.Number, fl.ID, t, matches, fields}); err != nil {
			return err
		}
	}
	return nil
}

// unixSeconds writes t as Unix seconds with its fraction, exactly.
func unixSeconds(t time.Time) string {
	sec, ns := t.Unix(), t.Nanosecond()
	if ns == 0 {
		return strconv.FormatInt(sec, 10)
	}
	sign := ""
	if sec < 0 {
		// -1.5 s is Unix -2 plus 0.5 s.
		sign, sec, ns = "-", -(sec + 1), 1e9-ns
	}
	return sign + strconv.FormatInt(sec, 10) + strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
}

// regexLines keeps the first lines of each kind for the report.
type regexLines struct {
	max   int
	all   map[string]bool
	lines map[string][]string
	count map[string]int
}

func (l *regexLines) add(lr *filter.LineResult) {
	kind := "missed"
	failed, helper := false, false
	for _, f := range lr.Failures {
		if f.NoFail {
			helper = true
		} else {
			failed = true
		}
	}
	switch {
	case helper || lr.Ignored:
		kind = "ignored"
	case failed:
		kind = "matched"
	}
	if l.lines == nil {
		l.lines, l.count = map[string][]string{}, map[string]int{}
	}
	l.count[kind]++
	if l.all[kind] || (kind != "matched" && len(l.lines[kind]) <= l.max) {
		l.lines[kind] = append(l.lines[kind], strings.Clone(lr.Line)) // lr is reused
	}
}

func printRegexSummary(w io.Writer, f *filter.Filter, st filter.Stats, elapsed time.Duration, lists *regexLines) {
	fmt.Fprintf(w, "\nResults\n=======\n")
	if p := f.PrefRegex(); p != nil {
		fmt.Fprintf(w, "\nPrefregex: %d total\n", st.PrefMatched)
		pprintList(w, "", []string{p.Source()})
	}
	printHits := func(title string, regs []*filter.Regex, hits []int) {
		total := 0
		var lines []string
		for i, r := range regs {
			total += hits[i]
			if hits[i] > 0 {
				lines = append(lines, fmt.Sprintf("%2d) [%d] %s", i+1, hits[i], r.Source()))
			}
		}
		fmt.Fprintf(w, "\n%s: %d total\n", title, total)
		pprintList(w, " #) [# of hits] regular expression", lines)
	}
	printHits("Failregex", f.FailRegexes(), st.FailHits)
	printHits("Ignoreregex", f.IgnoreRegexes(), st.IgnoreHits)
	fmt.Fprintf(w, "\nDate template hits:\n")
	var dates []string
	for _, h := range f.DateHits() {
		if h.Hits > 0 {
			dates = append(dates, fmt.Sprintf("[%d] %s", h.Hits, h.Name))
		}
	}
	pprintList(w, "[# of hits] date format", dates)
	fmt.Fprintf(w, "\nLines: %d lines, %d ignored, %d matched, %d missed\n", st.Lines, st.Ignored, st.Matched, st.Missed)
	fmt.Fprintf(w, "[processed in %.2f sec]\n", elapsed.Seconds())
	if st.Truncated > 0 {
		fmt.Fprintf(w, "(%d lines longer than %d bytes were cut to that length)\n", st.Truncated, filter.MaxLineSize)
	}
	fmt.Fprintln(w)
	for _, kind := range []string{"matched", "ignored", "missed"} {
		n := lists.count[kind]
		if n == 0 || (kind == "matched" && !lists.all[kind]) {
			continue
		}
		if !lists.all[kind] && n > lists.max {
			fmt.Fprintf(w, "%s line(s): too many to print.  Use --print-all-%s to print all %d lines\n",
				strings.ToUpper(kind[:1])+kind[1:], kind, n)
			continue
		}
		fmt.Fprintf(w, "%s line(s):\n", strings.ToUpper(kind[:1])+kind[1:])
		pprintList(w, "", lists.lines[kind])
	}
}

// pprintList prints lines as fail2ban-regex's lists.
func pprintList(w io.Writer, header string, lines []string) {
	if len(lines) == 0 {
		return
	}
	if header != "" {
		fmt.Fprintf(w, "|- %s\n", header)
	}
	fmt.Fprintf(w, "|  %s\n`-\n", strings.Join(lines, "\n|  "))
}

// progressBar returns a progress reporter drawing a bar on w.
func progressBar(w io.Writer, total int64) func(int64) {
	last := time.Time{}
	return func(done int64) {
		if time.Since(last) < 200*time.Millisecond && done < total {
			return
		}
		last = time.Now()
		pct := float64(done) / float64(total)
		if pct > 1 {
			pct = 1
		}
		const width = 40
		n := int(pct * width)
		fmt.Fprintf(w, "\r[%s%s] %5.1f%%", strings.Repeat("#", n), strings.Repeat(".", width-n), pct*100)
	}
}

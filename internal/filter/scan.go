package filter

import (
	"context"
	"io"
	"runtime"
)

// MaxLineSize is the longest line Scan passes on whole; the rest of a
// longer line is dropped (and counted in Stats.Truncated), so that one
// huge line neither exhausts memory nor hides the lines after it.
const MaxLineSize = 1 << 20

// Stats are fail2ban-regex's counts over a log.
type Stats struct {
	// Lines counts the lines tested: neither empty nor comments.
	Lines int
	// Matched, Ignored and Missed split Lines as fail2ban-regex does: a
	// line is ignored when an ignoreregex or a helper match (F-NOFAIL)
	// hit it, matched when a failregex found a failure in it (or took it
	// into a multi-line failure later), missed otherwise.
	Matched, Ignored, Missed int
	// Physical counts every line read, comments and empty ones included.
	Physical int
	// Truncated counts lines longer than MaxLineSize.
	Truncated int
	// PrefMatched counts the lines the prefregex matched.
	PrefMatched int
	// FailHits and IgnoreHits count the matches of each failregex and
	// ignoreregex.
	FailHits, IgnoreHits []int
}

// LineResult is one tested line with what the filter found in it.
type LineResult struct {
	// Number is the line's 1-based physical line number.
	Number int
	Line   string
	Result
}

// Scan reads r line by line and runs f over each line as fail2ban-regex
// does: lines are split at "\n" only, a trailing "\r" is stripped, an
// unterminated last line is read, and empty lines and lines starting
// with "#" are skipped (but numbered). fn, when not nil, sees each tested
// line; the LineResult is only valid during the call. progress, when not
// nil, is called with the bytes read so far every few thousand lines.
//
// A single-line filter spreads the date detection and the regexes over
// Workers goroutines (one per CPU when 0) and applies the results in
// order; see scanParallel.
func (f *Filter) Scan(ctx context.Context, r io.Reader, fn func(*LineResult) error, progress func(int64)) (Stats, error) {
	workers := f.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if f.maxLines <= 1 {
		return f.scanParallel(ctx, r, fn, progress, workers)
	}
	return f.scanSequential(ctx, r, fn, progress)
}

func (f *Filter) scanSequential(ctx context.Context, r io.Reader, fn func(*LineResult) error, progress func(int64)) (Stats, error) {
	st := Stats{FailHits: make([]int, len(f.fail)), IgnoreHits: make([]int, len(f.ignore))}
	var (
		lr   LineResult
		ferr error
	)
	err := readBatches(ctx, r, false, func(b *batch) bool {
		for _, sp := range b.lines {
			if !st.count(sp) {
				continue
			}
			line := b.data[sp.start:sp.end]
			res := f.Process(line)
			st.add(res)
			if fn != nil {
				lr = LineResult{Number: st.Physical, Line: line, Result: res}
				if ferr = fn(&lr); ferr != nil {
					return false
				}
			}
		}
		if progress != nil {
			progress(b.read)
		}
		return ctx.Err() == nil
	})
	if ferr != nil {
		return st, ferr
	}
	if err != nil {
		return st, err
	}
	return st, ctx.Err()
}

// count counts a line read and reports whether it is to be tested.
func (st *Stats) count(sp lineSpan) bool {
	st.Physical++
	if sp.truncated {
		st.Truncated++
	}
	return !sp.skip
}

// add counts one processed line as fail2ban-regex does.
func (st *Stats) add(res Result) {
	st.Lines++
	failed, helper := false, false
	for _, fl := range res.Failures {
		st.FailHits[fl.Regex]++
		if fl.NoFail {
			helper = true
		} else {
			failed = true
		}
	}
	for _, i := range res.IgnoreHits {
		st.IgnoreHits[i]++
	}
	if res.PrefMatched {
		st.PrefMatched++
	}
	switch {
	case helper || res.Ignored:
		st.Ignored++
	case failed:
		st.Matched++
	default:
		st.Missed++
	}
	st.Matched += res.Absorbed
	st.Missed -= res.Absorbed
}

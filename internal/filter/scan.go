package filter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
func (f *Filter) Scan(ctx context.Context, r io.Reader, fn func(*LineResult) error, progress func(int64)) (Stats, error) {
	st := Stats{FailHits: make([]int, len(f.fail)), IgnoreHits: make([]int, len(f.ignore))}
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		long  []byte
		read  int64
		lr    LineResult
		check int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		read += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) < MaxLineSize {
				long = append(long, chunk[:min(len(chunk), MaxLineSize-len(long))]...)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return st, fmt.Errorf("read log: %w", err)
		}
		line := chunk
		if long != nil {
			if len(long)+len(chunk) > MaxLineSize {
				st.Truncated++
			}
			long = append(long, chunk[:min(len(chunk), MaxLineSize-len(long))]...)
			line, long = long, nil
		}
		if len(line) == 0 && err != nil {
			break
		}
		st.Physical++
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > 0 && line[0] != '#' {
			s := string(line)
			res := f.Process(s)
			st.add(res, f)
			if fn != nil {
				lr = LineResult{Number: st.Physical, Line: s, Result: res}
				if err := fn(&lr); err != nil {
					return st, err
				}
			}
		}
		if check++; check >= 4096 {
			check = 0
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if progress != nil {
				progress(read)
			}
		}
		if err != nil {
			break
		}
	}
	if progress != nil {
		progress(read)
	}
	return st, nil
}

// add counts one processed line as fail2ban-regex does.
func (st *Stats) add(res Result, f *Filter) {
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

package filter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/edgeban/edgeban/internal/datetime"
)

// A parallel scan splits fail2ban's per-line work in two. What depends
// on the line alone (finding the date, running the regexes) runs on
// several lines at once, each worker with its own date detector; what
// depends on the lines before (the previous date for a line without one,
// multi-line failure ids, the counts, the caller's callback) runs after,
// in order, on one goroutine.
//
// A worker's date detector reorders its templates from the lines it sees,
// as fail2ban's does; the order only decides which template is tried
// first, so the dates found are the same unless two templates read one
// line differently.

const (
	batchLines = 2048
	batchBytes = 256 << 10
)

// batch is a run of lines read together.
type batch struct {
	data     string
	lines    []lineSpan
	read     int64 // bytes read up to the end of the batch
	results  []lineWork
	done     chan struct{}
	physical int // physical number of the batch's first line, minus one
}

type lineSpan struct {
	start, end int
	skip       bool // comment or empty: numbered, not tested
	truncated  bool
}

// lineWork is a worker's result for one line.
type lineWork struct {
	date datetime.Result
	text string
	lm   lineMatch
}

// clone returns a filter sharing f's compiled regexes with its own date
// detector and no state, for a scan worker.
func (f *Filter) clone() *Filter {
	c := &Filter{def: f.def, opts: f.opts, pref: f.pref, fail: f.fail, ignore: f.ignore,
		maxLines: f.maxLines, datePattern: f.datePattern, prefAny: f.prefAny, anyLits: f.anyLits,
		ml: newMLCache(100, 0)}
	c.dates = f.newDetector()
	return c
}

func (f *Filter) scanParallel(ctx context.Context, r io.Reader, fn func(*LineResult) error, progress func(int64), workers int) (Stats, error) {
	st := Stats{FailHits: make([]int, len(f.fail)), IgnoreHits: make([]int, len(f.ignore))}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	work := make(chan *batch, workers)
	ordered := make(chan *batch, 2*workers+2)
	var readErr error
	go func() {
		defer close(work)
		defer close(ordered)
		readErr = readBatches(ctx, r, func(b *batch) bool {
			select {
			case ordered <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- b:
			case <-ctx.Done():
				return false
			}
			return true
		})
	}()
	var wg sync.WaitGroup
	helpers := make([]*Filter, workers)
	for i := range helpers {
		helpers[i] = f.clone()
		wg.Add(1)
		go func(w *Filter) {
			defer wg.Done()
			for b := range work {
				b.results = make([]lineWork, len(b.lines))
				for j, sp := range b.lines {
					if sp.skip {
						continue
					}
					line := b.data[sp.start:sp.end]
					d := w.dates.Detect(line)
					text := splitText(line, d)
					b.results[j] = lineWork{date: d, text: text, lm: w.matchSingle(text)}
				}
				close(b.done)
			}
		}(helpers[i])
	}
	defer func() {
		cancel()
		for range ordered {
		}
		wg.Wait()
		for _, h := range helpers {
			f.helpers = append(f.helpers, h.dates)
		}
	}()

	var lr LineResult
	for b := range ordered {
		select {
		case <-b.done:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		for j, sp := range b.lines {
			st.Physical++
			if sp.truncated {
				st.Truncated++
			}
			if sp.skip {
				continue
			}
			line := b.data[sp.start:sp.end]
			w := &b.results[j]
			tl, date, found := f.dateLine(line, w.date, f.now())
			lm := w.lm
			if w.date.Status == datetime.Invalid && tl.text() != w.text {
				// The previous line's date stood in: the regexes see
				// the whole line.
				lm = f.matchSingle(tl.text())
			}
			res := f.applySingle(tl, lm, date)
			res.DateFound = found
			st.add(res, f)
			if fn != nil {
				lr = LineResult{Number: st.Physical, Line: line, Result: res}
				if err := fn(&lr); err != nil {
					return st, err
				}
			}
		}
		b.results = nil
		if progress != nil {
			progress(b.read)
		}
	}
	if readErr != nil {
		return st, readErr
	}
	return st, ctx.Err()
}

// readBatches reads r into batches of lines, split as Scan splits them,
// and hands each to emit until it returns false.
func readBatches(ctx context.Context, r io.Reader, emit func(*batch) bool) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		buf   []byte
		spans []lineSpan
		read  int64
		long  []byte
		trunc bool
	)
	flush := func() bool {
		if len(spans) == 0 {
			return true
		}
		b := &batch{data: string(buf), lines: spans, read: read, done: make(chan struct{})}
		buf, spans = make([]byte, 0, batchBytes+4096), make([]lineSpan, 0, batchLines)
		return emit(b)
	}
	buf, spans = make([]byte, 0, batchBytes+4096), make([]lineSpan, 0, batchLines)
	for {
		chunk, err := br.ReadSlice('\n')
		read += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > MaxLineSize {
				trunc = true
			}
			if len(long) < MaxLineSize {
				long = append(long, chunk[:min(len(chunk), MaxLineSize-len(long))]...)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read log: %w", err)
		}
		line := chunk
		if long != nil {
			if len(long)+len(chunk) > MaxLineSize {
				trunc = true
			}
			long = append(long, chunk[:min(len(chunk), MaxLineSize-len(long))]...)
			line, long = long, nil
		}
		if len(line) == 0 && err != nil {
			break
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		start := len(buf)
		buf = append(buf, line...)
		spans = append(spans, lineSpan{start: start, end: len(buf), skip: len(line) == 0 || line[0] == '#', truncated: trunc})
		trunc = false
		if len(spans) >= batchLines || len(buf) >= batchBytes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !flush() {
				return ctx.Err()
			}
		}
		if err != nil {
			break
		}
	}
	flush()
	return nil
}

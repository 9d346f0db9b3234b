package filter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unsafe"

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
//
// A line that holds none of the literals every failregex and ignoreregex
// match needs (see candSet), not even across the place its date would be
// cut out (joinable), is a miss whatever its date, and its date is not
// read: that is most of the cost of a line. Such a line's date is
// read later only if the next line that reaches the regexes has no date
// of its own and may take the previous line's. The date template hits
// then count only the lines whose date was read.

// batchBytes is the size of a read: lines are handed out in batches of
// about that many bytes.
const batchBytes = 64 << 10

// bufPool recycles the read buffers of a parallel scan: what outlives
// its batch (the previous date's text, multi-line failures) is copied.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes); return &b }}

func getBuf() []byte { return (*(bufPool.Get().(*[]byte)))[:0] }

func putBuf(b []byte) {
	if cap(b) == batchBytes {
		bufPool.Put(&b)
	}
}

// batchPool recycles the batches of a parallel scan, with their slices.
var batchPool = sync.Pool{New: func() any { return &batch{lines: make([]lineSpan, 0, 1024)} }}

// getBatch returns an empty batch.
func getBatch(read int64) *batch {
	b := batchPool.Get().(*batch)
	b.read, b.done = read, make(chan struct{})
	return b
}

// putBatch recycles b and its buffer once nothing points into them.
func putBatch(b *batch) {
	if b.pooled {
		putBuf(b.buf)
	}
	clear(b.works) // the results now belong to the caller
	*b = batch{lines: b.lines[:0], kinds: b.kinds[:0], works: b.works[:0]}
	batchPool.Put(b)
}

// batch is a run of lines read together.
type batch struct {
	buf    []byte // data's storage, recycled when pooled is set
	pooled bool
	data   string
	lines  []lineSpan
	read   int64 // bytes read up to the end of the batch
	// kinds says per line what the worker did; works holds the results
	// of the lines that reached the regexes, in order.
	kinds    []uint8
	works    []lineWork
	done     chan struct{}
	physical int // physical number of the batch's first line, minus one
}

type lineSpan struct {
	start, end int
	skip       bool // comment or empty: numbered, not tested
	truncated  bool
}

// Line kinds in a batch.
const (
	kindNotTested  uint8 = iota // comment or empty line
	kindHopeless                // no regex can match: the date was not read
	kindHopelessPM              // the same, but the prefregex matches
	kindWorked                  // dated and matched: see works
)

// lineWork is a worker's result for one line that reached the regexes.
type lineWork struct {
	date datetime.Result
	text string
	lm   lineMatch
}

// clone returns a filter sharing f's compiled regexes with its own date
// detector and no state, for a scan worker.
func (f *Filter) clone() *Filter {
	c := *f // the compiled parts are shared: they are read-only
	// The state of the lines seen is the worker's own.
	c.buf, c.seq, c.lastDate, c.lastTimeText, c.helpers = nil, 0, time.Time{}, "", nil
	c.ml = newMLCache(100, 0)
	c.dates = f.dates.Clone()
	return &c
}

func (f *Filter) scanParallel(ctx context.Context, r io.Reader, fn func(*LineResult) error, progress func(int64), workers int) (Stats, error) {
	st := Stats{FailHits: make([]int, len(f.fail)), IgnoreHits: make([]int, len(f.ignore))}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	work := make(chan *batch)
	ordered := make(chan *batch, workers+1)
	var readErr error
	go func() {
		defer close(work)
		defer close(ordered)
		readErr = readBatches(ctx, r, true, func(b *batch) bool {
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
				b.kinds = append(b.kinds[:0], make([]uint8, len(b.lines))...)
				now := w.now()
				for j, sp := range b.lines {
					if sp.skip {
						continue
					}
					line := b.data[sp.start:sp.end]
					cand := w.candidates(line)
					// The text the regexes see is the line less its
					// date: a literal may also appear where the date
					// was cut out.
					if skip, pref := w.hopeless(cand, line); skip && !w.cands.joinable(line, w.dateReach) {
						b.kinds[j] = kindHopeless
						if pref {
							b.kinds[j] = kindHopelessPM
						}
						continue
					}
					d := w.dates.DetectAt(line, now)
					text := splitText(line, d)
					b.kinds[j] = kindWorked
					var lm lineMatch
					if len(text) == len(line) || line[len(line)-len(text):] == text {
						// The text is the end of the line: it holds no
						// literal the line lacks.
						lm = w.matchWith(text, cand)
					} else {
						// A literal may span the cut date: the text's own.
						lm = w.matchSingle(text)
					}
					b.works = append(b.works, lineWork{date: d, text: text, lm: lm})
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

	var (
		lr          LineResult
		lastSkipped string // the latest line whose date was not read, if after the last one read
	)
	defer func() { f.batchNow, f.batchClock = time.Time{}, time.Time{} }()
	for b := range ordered {
		select {
		case <-b.done:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		f.batchNow, f.batchClock = time.Time{}, time.Time{}
		f.batchNow, f.batchClock = f.now(), f.clock()
		works := b.works
		for j, sp := range b.lines {
			if !st.count(sp) {
				continue
			}
			line := b.data[sp.start:sp.end]
			if k := b.kinds[j]; k != kindWorked {
				res := Result{PrefMatched: k == kindHopelessPM}
				st.add(res)
				lastSkipped = line
				if fn != nil {
					lr = LineResult{Number: st.Physical, Line: line, Result: res}
					if err := fn(&lr); err != nil {
						return st, err
					}
				}
				continue
			}
			w := &works[0]
			works = works[1:]
			if w.date.Status != datetime.Found && lastSkipped != "" {
				// This line may take the previous line's date: read it.
				if d := f.dates.Detect(lastSkipped); d.Status == datetime.Found {
					f.lastDate, f.lastTimeText = d.Time, lastSkipped[d.Start:d.End]
				}
			}
			lastSkipped = ""
			tl, date, found := f.dateLine(line, w.date, f.now())
			lm := w.lm
			if w.date.Status == datetime.Invalid && tl.text() != w.text {
				// The previous line's date stood in: the regexes see
				// the whole line.
				lm = f.matchSingle(tl.text())
			}
			res := f.applySingle(tl, lm, date)
			res.DateFound = found
			st.add(res)
			if fn != nil {
				lr = LineResult{Number: st.Physical, Line: line, Result: res}
				if err := fn(&lr); err != nil {
					return st, err
				}
			}
		}
		// Nothing may point into the batch's buffer past this point.
		f.lastTimeText = strings.Clone(f.lastTimeText)
		if lastSkipped != "" {
			lastSkipped = strings.Clone(lastSkipped) // the batch goes
		}
		if progress != nil {
			progress(b.read)
		}
		putBatch(b)
	}
	if readErr != nil {
		return st, readErr
	}
	return st, ctx.Err()
}

// readBatches reads r into batches of lines, split as Scan splits them,
// and hands each to emit until it returns false. Each batch owns its
// buffer: lines are read into it once and never copied.
func readBatches(ctx context.Context, r io.Reader, pool bool, emit func(*batch) bool) error {
	newBuf := func(n int) []byte {
		if pool && n <= batchBytes {
			return getBuf()
		}
		return make([]byte, 0, max(n, batchBytes))
	}
	var (
		buf     = newBuf(0)
		read    int64
		discard bool // inside the rest of an over-long line
		eof     bool
	)
	for !eof {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(buf) == cap(buf) {
			// No line end in a full buffer: grow it, up to the longest
			// line kept.
			nb := make([]byte, len(buf), min(2*cap(buf), MaxLineSize+1))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		read += int64(n)
		if errors.Is(err, io.EOF) {
			eof = true
		} else if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		end := bytes.LastIndexByte(buf, '\n') + 1 // complete lines end here
		if eof {
			end = len(buf)
		}
		if end == 0 {
			if len(buf) > MaxLineSize {
				// Pass on the line's first MaxLineSize bytes and drop the
				// rest up to its end.
				if !discard {
					b := &batch{data: unsafe.String(&buf[0], MaxLineSize), read: read, done: make(chan struct{}),
						lines: []lineSpan{{end: MaxLineSize, skip: buf[0] == '#', truncated: true}}}
					if !emit(b) {
						return ctx.Err()
					}
				}
				buf, discard = newBuf(0), true
			}
			continue
		}
		b := getBatch(read)
		for pos := 0; pos < end; {
			nl := bytes.IndexByte(buf[pos:end], '\n')
			stop := end
			if nl >= 0 {
				stop = pos + nl
			}
			next := stop + 1
			if discard {
				// The end of an over-long line already passed on.
				discard = false
				pos = next
				continue
			}
			e := stop
			if e > pos && buf[e-1] == '\r' {
				e--
			}
			b.lines = append(b.lines, lineSpan{start: pos, end: e, skip: e == pos || buf[pos] == '#'})
			pos = next
		}
		// The partial line after the last complete one starts the next
		// buffer; it is copied before the batch is handed on.
		rest := buf[min(end, len(buf)):]
		carry := append(newBuf(2*len(rest)), rest...)
		if len(b.lines) > 0 {
			b.data = unsafe.String(&buf[0], end)
			b.buf, b.pooled = buf, pool
			if !emit(b) {
				return ctx.Err()
			}
		} else if pool {
			putBuf(buf)
		}
		buf = carry
	}
	return nil
}

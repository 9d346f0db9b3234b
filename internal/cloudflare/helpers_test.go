package cloudflare

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Credentials used by the tests. They are made up and long enough that a
// leak is unmistakable.
const (
	testToken = "tEsT-tOkEn-0123456789abcdefghijklmnopqrstuv"
	testEmail = "admin@example.com"
	testKey   = "c2547eb745079dac9320b638f5e225cf483cc5cfdda41"
)

var (
	tokenAuth = Auth{Token: testToken}
	keyAuth   = Auth{Email: testEmail, Key: testKey}
)

// seen is one request as the fake API received it.
type seen struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// reply is what the fake API answers.
type reply struct {
	status int
	ctype  string // defaults to application/json
	body   string
	header map[string]string
	block  bool // wait until the request is cancelled
}

// fakeAPI is a loopback HTTP server that records requests and answers with
// a test-supplied function; n counts requests from 0.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	answer func(n int, r seen) reply
}

func newFakeAPI(t testing.TB, answer func(n int, r seen) reply) *fakeAPI {
	t.Helper()
	f := &fakeAPI{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, s)
	f.mu.Unlock()
	rep := f.answer(n, s)
	if rep.block {
		<-r.Context().Done()
		return
	}
	ct := rep.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	status := rep.status
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, rep.body)
}

func (f *fakeAPI) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// ok wraps result in a success envelope.
func ok(result any) reply {
	return reply{status: 200, body: envelopeJSON(true, result, nil, nil)}
}

// okInfo wraps result and result_info in a success envelope.
func okInfo(result, info any) reply {
	return reply{status: 200, body: envelopeJSON(true, result, nil, info)}
}

// fail is an error envelope.
func fail(status, code int, msg string) reply {
	return reply{status: status, body: envelopeJSON(false, nil, []ErrorDetail{{code, msg}}, nil)}
}

func envelopeJSON(success bool, result any, errs []ErrorDetail, info any) string {
	if errs == nil {
		errs = []ErrorDetail{}
	}
	m := map[string]any{"success": success, "errors": errs, "messages": []any{}, "result": result}
	if info != nil {
		m["result_info"] = info
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

const htmlBadGateway = `<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center>
<script>var x = "</body>";</script></body></html>`

// sleepRecorder replaces Options.Sleep: it records every wait and returns
// at once (or the context's error).
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// recLimiter is a Limiter that records its calls and never blocks.
type recLimiter struct {
	mu        sync.Mutex
	waits     int
	penalties []time.Time
}

func (l *recLimiter) Wait(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	l.waits++
	l.mu.Unlock()
	return 0, ctx.Err()
}

func (l *recLimiter) Penalize(_ context.Context, until time.Time) {
	l.mu.Lock()
	l.penalties = append(l.penalties, until)
	l.mu.Unlock()
}

// mustClient returns a client for f with the test's sleep recorder;
// edit may adjust the options.
func mustClient(t testing.TB, f *fakeAPI, auth Auth, sr *sleepRecorder, edit func(*Options)) *Client {
	t.Helper()
	opts := Options{BaseURL: f.URL + "/client/v4", Auth: auth, HTTPClient: f.Client()}
	if sr != nil {
		opts.Sleep = sr.sleep
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// jsonEqual reports whether two JSON texts encode the same value.
func jsonEqual(t testing.TB, got []byte, want string) bool {
	t.Helper()
	if want == "" {
		return len(got) == 0
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("request body %q is not JSON: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

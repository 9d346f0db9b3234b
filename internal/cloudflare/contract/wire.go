package contract

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Transport returns a RoundTripper that sends each request through next and
// validates the exchange, calling report once per mismatch. Transport errors
// from next are returned unchanged and only the request is checked then.
// report may be called from several goroutines at once.
func (v *Validator) Transport(next http.RoundTripper, report func(error)) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{v: v, next: next, report: report}
}

type transport struct {
	v      *Validator
	next   http.RoundTripper
	report func(error)
}

// RoundTrip sends req through the next RoundTripper and validates the exchange.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract: read request body: %w", err)
		}
		body = b
		// RoundTrippers must not modify the caller's request.
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	ex := &Exchange{
		Method:        req.Method,
		URL:           req.URL,
		RequestHeader: req.Header.Clone(),
		RequestBody:   body,
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.emit(req, ex)
		return resp, err
	}
	respBody, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if rerr != nil {
		// A connection cut in the middle of the body: check the request only,
		// and hand the error to the caller when it reads.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{rerr}))
		t.emit(req, ex)
		return resp, nil
	}
	ex.Status = resp.StatusCode
	ex.ResponseHeader = resp.Header.Clone()
	ex.ResponseBody = respBody
	t.emit(req, ex)
	return resp, nil
}

func (t *transport) emit(req *http.Request, ex *Exchange) {
	for _, err := range t.v.Validate(req.Context(), ex) {
		t.report(err)
	}
}

type errReader struct{ err error }

// Read returns the error that cut the body.
func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Handler returns an http.Handler that serves each request with next and
// validates the exchange, calling report once per mismatch. The response is
// buffered and sent to the client after validation, so that a mismatch is
// reported before the client sees the response (and a test cannot end in
// between). A request whose connection next hijacks (cfsim's
// dropped-connection fault) has only its request checked.
func (v *Validator) Handler(next http.Handler, report func(error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				report(fmt.Errorf("contract: %s %s: read request body: %w", r.Method, r.URL.Path, err))
				http.Error(w, "reading request body failed", http.StatusBadRequest)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		ex := &Exchange{
			Method:        r.Method,
			URL:           r.URL,
			RequestHeader: r.Header.Clone(),
			RequestBody:   body,
		}
		validate := func() {
			for _, err := range v.Validate(r.Context(), ex) {
				report(err)
			}
		}
		// A hijacked connection is closed by next: the request is checked
		// before that, so that the client cannot see the close first.
		rec := &recorder{ResponseWriter: w, beforeHijack: validate}
		next.ServeHTTP(rec, r)
		if !rec.hijacked {
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			ex.Status = rec.status
			ex.ResponseHeader = w.Header().Clone()
			ex.ResponseBody = rec.body.Bytes()
			validate()
			w.WriteHeader(rec.status)
			w.Write(rec.body.Bytes()) //nolint:errcheck // the client may have gone
		}
	})
}

// recorder buffers the response of the wrapped handler. Header() is the
// real writer's. It unwraps for http.ResponseController and supports
// Hijack directly.
type recorder struct {
	http.ResponseWriter
	status       int
	body         bytes.Buffer
	hijacked     bool
	beforeHijack func()
}

// WriteHeader records the status.
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// Write buffers p.
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush does nothing: the response is sent after validation.
func (r *recorder) Flush() {}

// Hijack takes over the connection; the response is then not checked.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("contract: %T cannot hijack", r.ResponseWriter)
	}
	if r.beforeHijack != nil && !r.hijacked {
		r.beforeHijack()
	}
	conn, rw, err := h.Hijack()
	if err == nil {
		r.hijacked = true
	}
	return conn, rw, err
}

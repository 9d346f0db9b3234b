// Package cloudflare is edgeban's client for Cloudflare's API v4: access
// rules, IP lists, rulesets and token checks, together with the credential
// files it reads and Cloudflare's own published IP ranges.
//
// The client is a thin layer over net/http. It checks every response (HTTP
// status, Content-Type, the envelope's success flag and error codes), retries
// what is worth retrying within a bounded budget, shares a rate budget with
// every other user of the same credential through a Limiter, and returns the
// last error when it gives up: it never reports a failure as success. The
// classifiers IsDuplicate, IsNotFound, IsRateLimited, IsRetryable and
// IsPermanent tell callers what an error means.
package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is the API v4 endpoint.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

const (
	defaultMaxRetries     = 4
	defaultAttemptTimeout = 20 * time.Second
	// lockout is how long Cloudflare blocks a credential that exceeded its
	// global budget; assumed for a 429 without Retry-After.
	lockout = 300 * time.Second
	// maxRetryAfter bounds any server-requested delay.
	maxRetryAfter = time.Hour
	backoffBase   = 500 * time.Millisecond
	backoffCap    = 8 * time.Second
	userAgent     = "edgeban-cloudflare/1"
)

// Options configures a Client. Only Auth is required.
type Options struct {
	// BaseURL defaults to DefaultBaseURL; tests point it at httptest.
	BaseURL string
	// Auth is the credential sent with every request.
	Auth Auth
	// HTTPClient defaults to a client without redirects over
	// http.DefaultTransport. The client uses a copy of it with redirects
	// disabled, so that credentials never follow a redirect.
	HTTPClient *http.Client
	// Limiter is the credential's rate budget; nil means no budget.
	Limiter Limiter
	// MaxRetries is the number of retries per call after the first
	// attempt: 0 means the default of 4, negative means none.
	MaxRetries int
	// AttemptTimeout bounds each HTTP attempt, including reading the body;
	// 0 means the default of 20 s.
	AttemptTimeout time.Duration
	// Logger receives debug records for attempts and warnings for retries;
	// nil discards them.
	Logger *slog.Logger
	// Observe, when set, is called after every HTTP attempt.
	Observe func(Attempt)
	// Sleep, when set, replaces the context-aware sleep between retries
	// and bulk-operation polls (tests record the waits).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Attempt describes one HTTP attempt, for Options.Observe.
type Attempt struct {
	Method   string
	Path     string        // path below the base URL, without the query
	Status   int           // 0 when no response arrived
	Err      error         // nil on success
	Duration time.Duration // time from sending to the end of the body
	Retry    bool          // another attempt follows
	Wait     time.Duration // delay before that attempt
	// Throttled is how long the rate budget (Options.Limiter) held this
	// attempt back before it was sent: the credential's budget was used
	// up, or a 429's lockout was in force.
	Throttled time.Duration
}

// Client is a Cloudflare API v4 client. It is safe for concurrent use.
type Client struct {
	base           string // without trailing slash
	auth           Auth
	hc             *http.Client
	limiter        Limiter
	maxRetries     int
	attemptTimeout time.Duration
	log            *slog.Logger
	observe        func(Attempt)
	sleep          func(context.Context, time.Duration) error
	now            func() time.Time
}

// New returns a Client for opts. It fails when the credential is not valid
// or the base URL is not an absolute http(s) URL.
func New(opts Options) (*Client, error) {
	if err := opts.Auth.Valid(); err != nil {
		return nil, err
	}
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	base, err := checkBaseURL(base)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:           base,
		auth:           opts.Auth,
		limiter:        opts.Limiter,
		maxRetries:     opts.MaxRetries,
		attemptTimeout: opts.AttemptTimeout,
		log:            opts.Logger,
		observe:        opts.Observe,
		sleep:          opts.Sleep,
		now:            time.Now,
	}
	hc := http.Client{}
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	switch {
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.attemptTimeout <= 0 {
		c.attemptTimeout = defaultAttemptTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	return c, nil
}

// checkBaseURL validates an API base URL and returns it without a trailing
// slash.
func checkBaseURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", errors.New("cloudflare: invalid base URL: want an absolute http(s) URL without user, query or fragment")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(base, "#") || u.Opaque != "" {
		// Redacted hides a password in user info.
		return "", fmt.Errorf("cloudflare: invalid base URL %q: want an absolute http(s) URL without user, query or fragment", sanitize(u.Redacted(), 200))
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// String describes the client without its secret.
func (c *Client) String() string {
	return "cloudflare.Client(" + c.base + ", " + c.auth.String() + ")"
}

// Format implements fmt.Formatter so that no verb prints the credential.
func (c *Client) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// request is one API call: a method, a path below the base URL, an
// optional query and an optional JSON body.
type request struct {
	method string
	path   string
	query  url.Values
	body   any // marshalled as JSON when non-nil
	// notIdempotent limits retries to rate-limit answers, which the server
	// rejected before doing anything: repeating the request after another
	// failure could apply it twice.
	notIdempotent bool
}

// do performs r with retries and decodes the envelope's result into out
// (when out is non-nil). It returns the envelope's result_info.
func (c *Client) do(ctx context.Context, r request, out any) (ResultInfo, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return ResultInfo{}, fmt.Errorf("cloudflare: %s %s: encoding request: %w", r.method, r.path, err)
		}
	}
	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var last error
	for attempt := 0; ; attempt++ {
		var throttled time.Duration
		if c.limiter != nil {
			var err error
			if throttled, err = c.limiter.Wait(ctx); err != nil {
				return ResultInfo{}, c.giveUp(r, "waiting for the rate budget", err, last)
			}
		}
		if err := ctx.Err(); err != nil {
			return ResultInfo{}, c.giveUp(r, "before sending", err, last)
		}
		start := c.now()
		res, hdr, err := c.attempt(ctx, r, target, payload)
		elapsed := c.now().Sub(start)
		if err == nil && out != nil && len(res.Result) > 0 && string(res.Result) != "null" {
			if uerr := json.Unmarshal(res.Result, out); uerr != nil {
				err = &APIError{Method: r.method, Path: r.path, Status: hdr.status, envelope: true,
					Reason: "malformed result: " + jsonProblem(uerr)}
			}
		}
		a := Attempt{Method: r.method, Path: r.path, Status: hdr.status, Err: err, Duration: elapsed, Throttled: throttled}
		if err == nil {
			c.log.LogAttrs(ctx, slog.LevelDebug, "cloudflare request",
				slog.String("method", r.method), slog.String("path", r.path),
				slog.Int("status", hdr.status), slog.Duration("duration", elapsed))
			c.report(a)
			return res.Info, nil
		}
		last = err
		wait := c.retryDelay(hdr, attempt)
		if IsRateLimited(err) && c.limiter != nil {
			// Everyone using this credential pauses, not just this call.
			c.limiter.Penalize(ctx, c.now().Add(wait))
		}
		retry := IsRetryable(err) && (!r.notIdempotent || IsRateLimited(err))
		if deadline, ok := ctx.Deadline(); ok && c.now().Add(wait).After(deadline) {
			retry = false // waiting would outlive the caller: give the error back now
		}
		if attempt >= c.maxRetries || !retry || ctx.Err() != nil {
			c.report(a)
			c.log.LogAttrs(ctx, slog.LevelDebug, "cloudflare request failed",
				slog.String("method", r.method), slog.String("path", r.path),
				slog.Int("status", hdr.status), slog.Int("attempt", attempt+1), slog.Any("error", err))
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return ResultInfo{}, c.giveUp(r, "after the attempt", ctx.Err(), err)
			}
			return ResultInfo{}, err
		}
		a.Retry, a.Wait = true, wait
		c.report(a)
		c.log.LogAttrs(ctx, slog.LevelWarn, "cloudflare request will be retried",
			slog.String("method", r.method), slog.String("path", r.path),
			slog.Int("status", hdr.status), slog.Int("attempt", attempt+1),
			slog.Duration("wait", wait), slog.Any("auth", c.auth), slog.Any("error", err))
		if err := c.sleep(ctx, wait); err != nil {
			return ResultInfo{}, c.giveUp(r, "waiting to retry", err, last)
		}
	}
}

// giveUp wraps a context (or limiter) error together with the last API
// error, so that both errors.Is(err, context.Canceled) and
// errors.As(err, **APIError) work.
func (c *Client) giveUp(r request, when string, cause, last error) error {
	if last == nil {
		return fmt.Errorf("cloudflare: %s %s: %s: %w", r.method, r.path, when, cause)
	}
	return fmt.Errorf("cloudflare: %s %s: %s: %w (last error: %w)", r.method, r.path, when, cause, last)
}

func (c *Client) report(a Attempt) {
	if c.observe != nil {
		c.observe(a)
	}
}

// respMeta is what the retry policy needs from a response's head.
type respMeta struct {
	status     int
	retryAfter time.Duration
	hasRetry   bool
}

// attempt sends one HTTP request and decodes its envelope.
func (c *Client) attempt(ctx context.Context, r request, target string, payload []byte) (decoded, respMeta, error) {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, target, body)
	if err != nil {
		return decoded{}, respMeta{}, fmt.Errorf("cloudflare: %s %s: building request: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth.apply(req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return decoded{}, respMeta{}, c.transportError(ctx, actx, r, err)
	}
	defer resp.Body.Close()
	meta := respMeta{status: resp.StatusCode}
	meta.retryAfter, meta.hasRetry = retryAfter(resp.Header, c.now())
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		return decoded{}, meta, c.transportError(ctx, actx, r, fmt.Errorf("reading HTTP %d body: %w", resp.StatusCode, err))
	}
	if len(raw) > maxBodySize {
		e := &APIError{Method: r.method, Path: r.path, Status: resp.StatusCode, RetryAfter: meta.retryAfter,
			Reason: fmt.Sprintf("response body larger than %d MiB", maxBodySize>>20)}
		return decoded{}, meta, e
	}
	res, err := decodeResponse(resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	if err != nil {
		var e *APIError
		if errors.As(err, &e) {
			e.Method, e.Path, e.RetryAfter = r.method, r.path, meta.retryAfter
			e.Body = c.auth.redact(e.Body)
			for i := range e.Errors {
				e.Errors[i].Message = c.auth.redact(e.Errors[i].Message)
			}
		}
		return decoded{}, meta, err
	}
	return res, meta, nil
}

// transportError classifies a failure without a (complete) response. An
// expired attempt timeout becomes a retryable timeout; the caller's own
// cancellation is passed through.
func (c *Client) transportError(ctx, actx context.Context, r request, err error) error {
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("attempt timed out after %s: %w", c.attemptTimeout, context.DeadlineExceeded)
	}
	return &TransportError{Method: r.method, Path: r.path, Err: scrubURLError(err)}
}

// scrubURLError drops the *url.Error wrapper, whose message repeats the
// full URL with its query; the method and path are already in
// TransportError.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// retryDelay picks the wait before the next attempt: what the server asked
// for, the five-minute lockout for a 429 that did not say, or exponential
// backoff with jitter.
func (c *Client) retryDelay(meta respMeta, attempt int) time.Duration {
	if meta.hasRetry && meta.retryAfter > 0 {
		return meta.retryAfter
	}
	if !meta.hasRetry && meta.status == 429 {
		return lockout
	}
	return backoff(attempt)
}

// backoff returns 0.5 s·2^n capped at 8 s, minus up to 25 % jitter.
func backoff(n int) time.Duration {
	d := backoffCap
	if n < 5 {
		d = min(backoffBase<<n, backoffCap)
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// get, post, ... are shorthands for do.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) (ResultInfo, error) {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: q}, out)
}

func (c *Client) send(ctx context.Context, method, path string, body, out any) error {
	_, err := c.do(ctx, request{method: method, path: path, body: body}, out)
	return err
}

package cfsim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// credential is an authenticated caller.
type credential struct {
	key      string // rate-limit bucket: "token:<value>" or "key:<email>"
	token    string // the bearer token, if that is how the caller came in
	readOnly bool
}

// authenticate checks the request's credentials (API-NOTES §3). A bearer
// token wins over X-Auth-Email/X-Auth-Key. It returns the failure response
// when the request is not authenticated.
func (s *Server) authenticate(h http.Header) (*credential, *response) {
	if auth := h.Get("Authorization"); auth != "" {
		scheme, token, _ := strings.Cut(auth, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return nil, failErrs(http.StatusBadRequest, apiError{
				Code: 6003, Message: "Invalid request headers",
				ErrorChain: []apiError{{Code: 6111, Message: "Invalid format for Authorization header"}},
			})
		}
		if len(s.cfg.Tokens) == 0 && s.cfg.Email == "" && token == DemoToken {
			return &credential{key: "token:" + token, token: token}, nil
		}
		for _, t := range s.cfg.Tokens {
			if t.Value == token {
				return &credential{key: "token:" + token, token: token, readOnly: t.ReadOnly}, nil
			}
		}
		return nil, fail(http.StatusUnauthorized, 1000, "Invalid API Token")
	}
	email, key := h.Get("X-Auth-Email"), h.Get("X-Auth-Key")
	switch {
	case email == "" && key == "":
		return nil, failErrs(http.StatusBadRequest,
			apiError{Code: 9106, Message: "Missing X-Auth-Email header"},
			apiError{Code: 9107, Message: "Missing X-Auth-Key header"})
	case email == "":
		return nil, fail(http.StatusBadRequest, 9106, "Missing X-Auth-Email header")
	case key == "":
		return nil, fail(http.StatusBadRequest, 9107, "Missing X-Auth-Key header")
	}
	if s.cfg.Email == "" || !strings.EqualFold(email, s.cfg.Email) || key != s.cfg.Key {
		return nil, fail(http.StatusForbidden, 9103, "Unknown X-Auth-Key or X-Auth-Email")
	}
	return &credential{key: "key:" + strings.ToLower(email)}, nil
}

// window is a sliding window of weighted events, oldest first.
type window struct {
	times  []time.Time
	counts []int
	head   int
	sum    int
}

// prune drops the events older than width before now.
func (w *window) prune(now time.Time, width time.Duration) {
	cut := now.Add(-width)
	for w.head < len(w.times) && !w.times[w.head].After(cut) {
		w.sum -= w.counts[w.head]
		w.head++
	}
	// Compact once the dead prefix dominates, keeping add amortised O(1).
	if w.head > 64 && w.head*2 > len(w.times) {
		n := copy(w.times, w.times[w.head:])
		copy(w.counts, w.counts[w.head:])
		w.times, w.counts = w.times[:n], w.counts[:n]
		w.head = 0
	}
}

func (w *window) add(t time.Time, n int) {
	w.times = append(w.times, t)
	w.counts = append(w.counts, n)
	w.sum += n
}

// wait returns how long until the window, now pruned, has room for n more
// within limit.
func (w *window) wait(now time.Time, width time.Duration, limit, n int) time.Duration {
	excess := w.sum + n - limit
	for i := w.head; i < len(w.times) && excess > 0; i++ {
		excess -= w.counts[i]
		if excess <= 0 {
			return w.times[i].Add(width).Sub(now)
		}
	}
	return width
}

// limiter is the global API rate limit state of one credential.
type limiter struct {
	w           window
	lockedUntil time.Time
}

// rateLimitLocked counts the request against the credential's window and
// answers 429 during a lockout or when the request goes over the limit,
// which starts a lockout (API-NOTES §4).
func (s *Server) rateLimitLocked(cred *credential, now time.Time) *response {
	if s.cfg.RateLimit < 0 {
		return nil
	}
	l := s.limit[cred.key]
	if l == nil {
		l = &limiter{}
		s.limit[cred.key] = l
	}
	l.w.prune(now, s.cfg.RateWindow)
	if now.Before(l.lockedUntil) {
		return rateLimited(l.lockedUntil.Sub(now))
	}
	if l.w.sum+1 > s.cfg.RateLimit {
		l.lockedUntil = now.Add(s.cfg.Lockout)
		s.stats.Lockouts++
		s.log.Info("cfsim: credential locked out", "limit", s.cfg.RateLimit, "window", s.cfg.RateWindow, "lockout", s.cfg.Lockout)
		return rateLimited(s.cfg.Lockout)
	}
	l.w.add(now, 1)
	return nil
}

func rateLimited(retry time.Duration) *response {
	res := fail(http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
	res.header = http.Header{"Retry-After": {strconv.Itoa(max(1, ceilSeconds(retry)))}}
	return res
}

// rateHeaders sets the RateLimit headers of the 2025-09 changelog on every
// API response, unless the rate limit is disabled. A request without a
// credential sees the full quota.
func (s *Server) rateHeaders(h http.Header, cred *credential, now time.Time) {
	if s.cfg.RateLimit < 0 {
		return
	}
	limit := s.cfg.RateLimit
	window := int(s.cfg.RateWindow / time.Second)
	remaining, reset := limit, 0
	if cred != nil {
		if l := s.limit[cred.key]; l != nil {
			if now.Before(l.lockedUntil) {
				remaining, reset = 0, ceilSeconds(l.lockedUntil.Sub(now))
			} else {
				remaining = max(limit-l.w.sum, 0)
				if l.w.head < len(l.w.times) {
					reset = ceilSeconds(l.w.times[l.w.head].Add(s.cfg.RateWindow).Sub(now))
				}
			}
		}
	}
	h.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, remaining, reset))
	h.Set("Ratelimit-Policy", fmt.Sprintf(`"burst";q=%d;w=%d`, limit, window))
}

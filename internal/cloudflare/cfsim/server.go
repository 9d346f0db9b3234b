// Package cfsim is a stateful, in-memory fake of Cloudflare's API v4 for
// edgeban's tests and demos.
//
// A Server is an http.Handler that serves the API under /client/v4: IP Access
// Rules at user, account and zone scope, custom lists with asynchronous bulk
// operations, minimal zone rulesets (the WAF custom rule that uses a list),
// token verification and the zone lookup. It reproduces the behaviour that
// API-NOTES §10 lists: the envelope and error codes, duplicate and not-found
// semantics, plan quotas, the per-credential rate limit with lockout, and the
// RateLimit headers. Faults (5xx with HTML bodies, 429 bursts, latency,
// dropped connections, malformed JSON) are off by default and seeded for
// reproducibility.
//
// Outside the API it serves GET /__cfsim/state, GET /__cfsim/stats and POST
// /__cfsim/reset for shell scripts; Go tests use Snapshot, Stats and Reset.
package cfsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIPrefix is the path prefix of the simulated API.
const APIPrefix = "/client/v4"

// adminPrefix is the path prefix of the introspection endpoints.
const adminPrefix = "/__cfsim/"

// maxBody bounds request bodies; 100,000 list items fit easily.
const maxBody = 64 << 20

// Server is the simulator. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	routes []*route

	mu    sync.Mutex
	st    *state
	stats Stats
	limit map[string]*limiter // per credential
	burst burstState
	rng   generators
}

// generators holds one random stream per purpose, so that enabling one
// fault does not shift the draws of another.
type generators struct {
	ids, error5xx, applied5xx, drop, malformed, status *rand.Rand
}

func newGenerators(seed uint64) generators {
	g := func(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }
	return generators{ids: g(1), error5xx: g(2), applied5xx: g(3), drop: g(4), malformed: g(5), status: g(6)}
}

type burstState struct {
	passed  int // requests let through since the last burst
	left    int // 429s left in the current burst
	sent    int // 429s sent in bursts so far, to alternate the codes
	enabled bool
}

// New returns a Server for cfg. It panics if cfg does not pass
// Config.Validate.
func New(cfg Config) *Server {
	c, err := cfg.withDefaults()
	if err != nil {
		panic("cfsim: " + err.Error())
	}
	s := &Server{cfg: c, log: c.Logger}
	s.routes = s.buildRoutes()
	s.resetLocked()
	return s
}

// Reset forgets every rule, list, operation and ruleset, the rate-limit
// windows and lockouts, and the statistics, and reseeds the generators.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.st = newState(&s.cfg)
	s.stats = newStats()
	s.limit = make(map[string]*limiter)
	s.burst = burstState{enabled: s.cfg.Faults.Burst429Every > 0 && s.cfg.Faults.Burst429Len > 0}
	s.rng = newGenerators(s.cfg.Seed)
}

// newID returns 32 lowercase hex characters from the seeded id generator.
func (s *Server) newID() string {
	return fmt.Sprintf("%016x%016x", s.rng.ids.Uint64(), s.rng.ids.Uint64())
}

// route is one operation of the simulated API.
type route struct {
	method  string
	pattern string // relative to APIPrefix, with {name} segments
	segs    []string
	handle  func(*call) *response
}

func (rt *route) key() string { return rt.method + " " + rt.pattern }

func (rt *route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range rt.segs {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 4)
			}
			params[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

func (s *Server) buildRoutes() []*route {
	type h = func(*call) *response
	defs := []struct {
		method, pattern string
		handle          h
	}{
		{"GET", "/user/tokens/verify", s.verifyToken},
		{"GET", "/accounts/{account_id}/tokens/verify", s.verifyToken},
		{"GET", "/zones", s.listZones},

		{"GET", "/user/firewall/access_rules/rules", s.listRules},
		{"POST", "/user/firewall/access_rules/rules", s.createRule},
		{"PATCH", "/user/firewall/access_rules/rules/{rule_id}", s.patchRule},
		{"DELETE", "/user/firewall/access_rules/rules/{rule_id}", s.deleteRule},
		{"GET", "/accounts/{account_id}/firewall/access_rules/rules", s.listRules},
		{"POST", "/accounts/{account_id}/firewall/access_rules/rules", s.createRule},
		{"GET", "/accounts/{account_id}/firewall/access_rules/rules/{rule_id}", s.getRule},
		{"PATCH", "/accounts/{account_id}/firewall/access_rules/rules/{rule_id}", s.patchRule},
		{"DELETE", "/accounts/{account_id}/firewall/access_rules/rules/{rule_id}", s.deleteRule},
		{"GET", "/zones/{zone_id}/firewall/access_rules/rules", s.listRules},
		{"POST", "/zones/{zone_id}/firewall/access_rules/rules", s.createRule},
		{"GET", "/zones/{zone_id}/firewall/access_rules/rules/{rule_id}", s.getRule},
		{"PATCH", "/zones/{zone_id}/firewall/access_rules/rules/{rule_id}", s.patchRule},
		{"DELETE", "/zones/{zone_id}/firewall/access_rules/rules/{rule_id}", s.deleteRule},

		// bulk_operations comes before {list_id} so that it wins.
		{"GET", "/accounts/{account_id}/rules/lists/bulk_operations/{operation_id}", s.getBulkOperation},
		{"GET", "/accounts/{account_id}/rules/lists", s.listLists},
		{"POST", "/accounts/{account_id}/rules/lists", s.createList},
		{"GET", "/accounts/{account_id}/rules/lists/{list_id}", s.getList},
		{"PUT", "/accounts/{account_id}/rules/lists/{list_id}", s.updateList},
		{"DELETE", "/accounts/{account_id}/rules/lists/{list_id}", s.deleteList},
		{"GET", "/accounts/{account_id}/rules/lists/{list_id}/items", s.listItems},
		{"POST", "/accounts/{account_id}/rules/lists/{list_id}/items", s.writeItems},
		{"PUT", "/accounts/{account_id}/rules/lists/{list_id}/items", s.writeItems},
		{"DELETE", "/accounts/{account_id}/rules/lists/{list_id}/items", s.writeItems},
		{"GET", "/accounts/{account_id}/rules/lists/{list_id}/items/{item_id}", s.getItem},

		{"GET", "/zones/{zone_id}/rulesets/phases/{phase}/entrypoint", s.getEntrypoint},
		{"PUT", "/zones/{zone_id}/rulesets/phases/{phase}/entrypoint", s.putEntrypoint},
		{"POST", "/zones/{zone_id}/rulesets", s.createRuleset},
		{"POST", "/zones/{zone_id}/rulesets/{ruleset_id}/rules", s.createRulesetRule},
		{"PATCH", "/zones/{zone_id}/rulesets/{ruleset_id}/rules/{rule_id}", s.patchRulesetRule},
		{"DELETE", "/zones/{zone_id}/rulesets/{ruleset_id}/rules/{rule_id}", s.deleteRulesetRule},
	}
	routes := make([]*route, 0, len(defs))
	for _, d := range defs {
		routes = append(routes, &route{method: d.method, pattern: d.pattern, segs: splitPath(d.pattern), handle: d.handle})
	}
	return routes
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// find returns the route for method and path (relative to APIPrefix), and
// whether some route has the path with another method.
func (s *Server) find(method, path string) (*route, map[string]string, bool) {
	segs := splitPath(path)
	otherMethod := false
	for _, rt := range s.routes {
		params, ok := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, false
		}
		otherMethod = true
	}
	return nil, nil, otherMethod
}

// call is one API request being handled, under Server.mu.
type call struct {
	r      *http.Request
	route  *route
	params map[string]string
	query  url.Values
	body   []byte
	now    time.Time
	cred   *credential
}

func (c *call) isWrite() bool { return c.r.Method != http.MethodGet && c.r.Method != http.MethodHead }

// response is what a handler produces; ServeHTTP writes it after releasing
// the lock.
type response struct {
	status int
	header http.Header
	body   []byte
	ctype  string
	// drop closes the connection without a response.
	drop bool
}

// apiError is one entry of the envelope's errors.
type apiError struct {
	Code       int         `json:"code"`
	Message    string      `json:"message"`
	ErrorChain []apiError  `json:"error_chain,omitempty"`
	Source     *errPointer `json:"source,omitempty"`
}

type errPointer struct {
	Pointer string `json:"pointer"`
}

type envelope struct {
	Success    bool       `json:"success"`
	Errors     []apiError `json:"errors"`
	Messages   []any      `json:"messages"`
	Result     any        `json:"result"`
	ResultInfo any        `json:"result_info,omitempty"`
}

func jsonResponse(status int, env envelope) *response {
	if env.Errors == nil {
		env.Errors = []apiError{}
	}
	if env.Messages == nil {
		env.Messages = []any{}
	}
	b, err := json.Marshal(env)
	if err != nil {
		// Only our own result types are marshalled; this cannot happen.
		panic(fmt.Sprintf("cfsim: marshal response: %v", err))
	}
	return &response{status: status, body: b, ctype: "application/json"}
}

func ok(result any) *response {
	return jsonResponse(http.StatusOK, envelope{Success: true, Result: result})
}

func okInfo(result, info any) *response {
	return jsonResponse(http.StatusOK, envelope{Success: true, Result: result, ResultInfo: info})
}

func fail(status, code int, msg string) *response {
	return failErrs(status, apiError{Code: code, Message: msg})
}

func failErrs(status int, errs ...apiError) *response {
	return jsonResponse(status, envelope{Success: false, Errors: errs, Result: nil})
}

func failf(status, code int, format string, args ...any) *response {
	return fail(status, code, fmt.Sprintf(format, args...))
}

// errorPage is the HTML body of an injected 5xx, shaped like Cloudflare's.
func errorPage(status int) *response {
	title := map[int]string{
		http.StatusBadGateway:         "Bad gateway",
		http.StatusServiceUnavailable: "Service unavailable",
		520:                           "Web server is returning an unknown error",
	}[status]
	body := fmt.Sprintf("<!DOCTYPE html>\n<html><head><title>api.cloudflare.com | %d: %s</title></head>"+
		"<body><h1>%s</h1><p>Error code %d</p><p>Injected by cfsim.</p></body></html>\n", status, title, title, status)
	return &response{status: status, body: []byte(body), ctype: "text/html; charset=UTF-8"}
}

// ServeHTTP serves the API under /client/v4 and the admin endpoints under
// /__cfsim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		s.serveAdmin(w, r)
		return
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.write(w, r, failf(http.StatusRequestEntityTooLarge, 6004, "request body larger than %d bytes", maxBody))
				return
			}
			return // the client went away
		}
		body = b
	}
	if d := s.cfg.Faults.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	res, routeKey := s.handleLocked(r, body)
	s.stats.Requests++
	s.stats.ByRoute[routeKey]++
	if res.drop {
		s.stats.Drops++
	} else {
		s.stats.ByStatus[res.status]++
		if res.status == http.StatusTooManyRequests {
			s.stats.RateLimited++
		}
	}
	s.mu.Unlock()

	if res.drop {
		s.dropConn(w)
		return
	}
	s.write(w, r, res)
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, res *response) {
	h := w.Header()
	for k, v := range res.header {
		h[k] = v
	}
	h.Set("Content-Type", res.ctype)
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(res.status)
	if r.Method != http.MethodHead {
		w.Write(res.body) //nolint:errcheck // the client may have gone
	}
	s.log.Debug("cfsim request", "method", r.Method, "path", r.URL.Path, "status", res.status)
}

// dropConn closes the connection without a response: a reset where the
// connection is TCP. Where hijacking is not possible (HTTP/2), the handler
// aborts, which resets the stream.
func (s *Server) dropConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) //nolint:errcheck // best effort: a reset rather than a FIN
	}
	conn.Close()
}

// handleLocked runs the pipeline for one API request: drop fault, auth,
// rate limit, 429 bursts, pre-apply 5xx, permissions, the operation, the
// applied-5xx and malformed-body faults. It returns the response and the
// statistics key of the route.
func (s *Server) handleLocked(r *http.Request, body []byte) (*response, string) {
	now := s.cfg.Now()
	s.tickLocked(now)
	f := s.cfg.Faults

	path, isAPI := strings.CutPrefix(r.URL.Path, APIPrefix)
	var rt *route
	var params map[string]string
	otherMethod := false
	if isAPI && (path == "" || path[0] == '/') {
		rt, params, otherMethod = s.find(r.Method, path)
	}
	routeKey := r.Method + " (unknown)"
	if rt != nil {
		routeKey = rt.key()
	}

	if f.Drop > 0 && s.rng.drop.Float64() < f.Drop {
		return &response{drop: true}, routeKey
	}

	c := &call{r: r, route: rt, params: params, query: r.URL.Query(), body: body, now: now}
	res := s.serveLocked(c, otherMethod)

	if f.Malformed > 0 && strings.HasPrefix(res.ctype, "application/json") && s.rng.malformed.Float64() < f.Malformed {
		res.body = res.body[:len(res.body)/2]
		s.stats.Malformed++
	}
	if res.header == nil {
		res.header = http.Header{}
	}
	s.rateHeaders(res.header, c.cred, now)
	return res, routeKey
}

func (s *Server) serveLocked(c *call, otherMethod bool) *response {
	f := s.cfg.Faults
	cred, res := s.authenticate(c.r.Header)
	if res != nil {
		return res
	}
	c.cred = cred
	if res := s.rateLimitLocked(cred, c.now); res != nil {
		return res
	}
	if res := s.burstLocked(); res != nil {
		return res
	}
	if f.Error5xx > 0 && s.rng.error5xx.Float64() < f.Error5xx {
		s.stats.Injected5xx++
		return errorPage(s.fault5xxStatus())
	}
	if c.route == nil {
		if otherMethod {
			return failf(http.StatusMethodNotAllowed, 7001, "Method %s not available for that URI.", c.r.Method)
		}
		return fail(http.StatusNotFound, 7000, "No route for that URI")
	}
	if c.isWrite() && cred.readOnly {
		return fail(http.StatusForbidden, 10000, "Authentication error")
	}
	res = c.route.handle(c)
	if c.isWrite() && res.status/100 == 2 && f.Applied5xx > 0 && s.rng.applied5xx.Float64() < f.Applied5xx {
		s.stats.Injected5xx++
		s.stats.Applied5xx++
		return errorPage(s.fault5xxStatus())
	}
	return res
}

func (s *Server) fault5xxStatus() int {
	return [...]int{http.StatusBadGateway, http.StatusServiceUnavailable, 520}[s.rng.status.IntN(3)]
}

// burstLocked implements Faults.Burst429Every and Burst429Len.
func (s *Server) burstLocked() *response {
	b := &s.burst
	if !b.enabled {
		return nil
	}
	if b.left == 0 {
		b.passed++
		if b.passed <= s.cfg.Faults.Burst429Every {
			return nil
		}
		b.passed = 0
		b.left = s.cfg.Faults.Burst429Len
	}
	b.left--
	b.sent++
	s.stats.Injected429++
	var res *response
	if b.sent%2 == 1 {
		res = fail(http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
	} else {
		res = failf(http.StatusTooManyRequests, 10100, "More than %d requests per %d seconds reached. Please wait and consider throttling your request speed",
			s.cfg.RateLimit, int(s.cfg.RateWindow/time.Second))
	}
	res.header = http.Header{"Retry-After": {"1"}}
	return res
}

// ceilSeconds rounds d up to whole seconds, at least 0.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// tokenID is the stable id the verify endpoint reports for a token.
func tokenID(token string) string {
	sum := sha256.Sum256([]byte("cfsim token " + token))
	return hex.EncodeToString(sum[:16])
}

func (s *Server) verifyToken(c *call) *response {
	if id, ok := c.params["account_id"]; ok && id != s.cfg.AccountID {
		return s.noRoute(c)
	}
	if c.cred.token == "" {
		return fail(http.StatusUnauthorized, 1000, "Invalid API Token")
	}
	return jsonResponse(http.StatusOK, envelope{
		Success: true,
		Result:  map[string]string{"id": tokenID(c.cred.token), "status": "active"},
		Messages: []any{map[string]any{
			"code": 10000, "message": "This API Token is valid and active", "type": nil,
		}},
	})
}

// noRoute is Cloudflare's answer for an account or zone the caller cannot
// see.
func (s *Server) noRoute(c *call) *response {
	return failf(http.StatusNotFound, 7003, "Could not route to %s, perhaps your object identifier is invalid?",
		strings.TrimPrefix(c.r.URL.Path, APIPrefix))
}

type zoneJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// listZones serves GET /zones?name=NAME, which edgeban uses to turn a zone
// name into its id. It is not in the 2024 subset.
func (s *Server) listZones(c *call) *response {
	page, perPage, res := pageParams(c.query, 20, 50)
	if res != nil {
		return res
	}
	name := strings.ToLower(c.query.Get("name"))
	var zones []zoneJSON
	for id, n := range s.cfg.Zones {
		if name == "" || strings.ToLower(n) == name {
			zones = append(zones, zoneJSON{ID: id, Name: n, Status: "active"})
		}
	}
	slices.SortFunc(zones, func(a, b zoneJSON) int { return strings.Compare(a.Name, b.Name) })
	out, info := paginate(zones, page, perPage)
	return okInfo(out, info)
}

// pageInfo is result_info of page-numbered lists.
type pageInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func paginate[T any](all []T, page, perPage int) ([]T, pageInfo) {
	total := len(all)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	out := all[start:end]
	if out == nil {
		out = []T{}
	}
	return out, pageInfo{
		Page: page, PerPage: perPage, Count: len(out), TotalCount: total,
		TotalPages: (total + perPage - 1) / perPage,
	}
}

// Package contract validates HTTP traffic against Cloudflare's OpenAPI subset.
//
// It is test support: it loads ../shared/cloudflare/openapi-subset.json (the
// 2024 schema of the endpoints edgeban uses), patches the schema defects
// that API-NOTES §5.2 documents, and checks requests and responses through an
// http.RoundTripper (for clients) or an http.Handler (for servers such as
// cfsim). It is the only package of edgeban that imports kin-openapi.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

// BasePath is the path prefix of Cloudflare's API v4; the validator matches
// the schema's paths under it on any host.
const BasePath = "/client/v4"

// SchemaPath returns the path of the OpenAPI subset that lives beside the
// checkout: it walks up from the working directory to the directory holding
// go.mod and returns <root>/../shared/cloudflare/openapi-subset.json. It
// skips the test when the file is not there.
func SchemaPath(tb testing.TB) string {
	tb.Helper()
	return sharedtest.Path(tb, "cloudflare/openapi-subset.json")
}

// Validator checks HTTP exchanges against the patched schema. It is safe for
// concurrent use.
type Validator struct {
	router routers.Router

	mu    sync.RWMutex
	allow []allowRule
}

type allowRule struct {
	method string
	segs   []string
}

// Load reads the OpenAPI document at path, patches the known defects of the
// 2024 subset (see patch) and prepares a Validator.
func Load(path string) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("contract: load %s: %w", path, err)
	}
	if err := patch(doc); err != nil {
		return nil, fmt.Errorf("contract: patch %s: %w", path, err)
	}
	// Match the schema's paths under /client/v4 whatever the host is: the
	// validator routes on a host-less copy of each request.
	doc.Servers = openapi3.Servers{{URL: BasePath}}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		return nil, fmt.Errorf("contract: build router for %s: %w", path, err)
	}
	return &Validator{router: router}, nil
}

// Allow lets an operation that is not in the schema through without a
// "not in schema" mismatch. pattern is a path such as "/zones" or
// "/accounts/{id}/tokens/verify"; a leading /client/v4 on the request path is
// ignored when matching, so "/__cfsim/stats" names an endpoint outside the
// API. A segment in braces matches any one segment and a final "*" matches
// the rest of the path. method "*" matches every method. Allowed operations
// under /client/v4 still get the envelope check ({success, errors, messages,
// result}) on their JSON responses.
func (v *Validator) Allow(method, pattern string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.allow = append(v.allow, allowRule{method: strings.ToUpper(method), segs: splitPath(pattern)})
}

func (v *Validator) allowed(method, path string) bool {
	segs := splitPath(strings.TrimPrefix(path, BasePath))
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, r := range v.allow {
		if r.method != "*" && r.method != method {
			continue
		}
		if matchSegs(r.segs, segs) {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func matchSegs(pattern, segs []string) bool {
	for i, p := range pattern {
		if p == "*" && i == len(pattern)-1 {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return len(pattern) == len(segs)
}

// Exchange is one HTTP request and its response as seen on the wire. A
// Status of 0 means no response was received (a dropped connection), and
// only the request is checked.
type Exchange struct {
	Method         string
	URL            *url.URL // only the path and the query are used
	RequestHeader  http.Header
	RequestBody    []byte
	Status         int
	ResponseHeader http.Header
	ResponseBody   []byte
}

// Part names the half of an exchange that a Mismatch is about.
type Part string

// The parts of an exchange.
const (
	PartRoute    Part = "route"    // the operation is not in the schema
	PartRequest  Part = "request"  // parameters, body or security
	PartResponse Part = "response" // status or body
)

// Mismatch is one difference between an exchange and the schema.
type Mismatch struct {
	Method    string
	Path      string
	Status    int    // 0 when no response was received
	Operation string // the schema's operationId, when the route is known
	Part      Part
	Err       error
	Exchange  *Exchange
}

// Error names the method, path, status and what failed.
func (m *Mismatch) Error() string {
	op := ""
	if m.Operation != "" {
		op = " [" + m.Operation + "]"
	}
	return fmt.Sprintf("contract: %s %s%s -> %d: %s: %v", m.Method, m.Path, op, m.Status, m.Part, m.Err)
}

// Unwrap returns the underlying validation error.
func (m *Mismatch) Unwrap() error { return m.Err }

// ErrNotInSchema is wrapped by the mismatch for an operation that is neither
// in the schema nor allowed with Allow.
var ErrNotInSchema = errors.New("operation not in schema")

// Validate checks one exchange and returns its mismatches, at most one per
// part: an unknown operation, the request, and the response.
func (v *Validator) Validate(ctx context.Context, ex *Exchange) []error {
	path := ex.URL.Path
	mismatch := func(part Part, op string, err error) error {
		return &Mismatch{Method: ex.Method, Path: path, Status: ex.Status, Operation: op, Part: part, Err: err, Exchange: ex}
	}

	req := &http.Request{
		Method: ex.Method,
		URL:    &url.URL{Path: path, RawPath: ex.URL.RawPath, RawQuery: ex.URL.RawQuery},
		Header: ex.RequestHeader.Clone(),
		Host:   "api.cloudflare.com",
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	setBody(req, ex.RequestBody)
	req = req.WithContext(ctx)

	route, pathParams, err := v.router.FindRoute(req)
	if err != nil {
		if v.allowed(ex.Method, path) {
			if strings.HasPrefix(path, BasePath+"/") && ex.Status != 0 {
				if err := checkEnvelope(ex); err != nil {
					return []error{mismatch(PartResponse, "", err)}
				}
			}
			return nil
		}
		return []error{mismatch(PartRoute, "", fmt.Errorf("%w: %v", ErrNotInSchema, err))}
	}
	opID := route.Operation.OperationID

	var errs []error
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		AuthenticationFunc:    authenticate,
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams,
		Route:      route,
		Options:    opts,
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		errs = append(errs, mismatch(PartRequest, opID, err))
	}
	if ex.Status == 0 || skipResponse(ex) {
		return errs
	}
	// The request body was consumed by the request validation.
	setBody(req, ex.RequestBody)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 ex.Status,
		Header:                 ex.ResponseHeader,
		Options:                opts,
	}
	out.SetBodyBytes(ex.ResponseBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, mismatch(PartResponse, opID, err))
	}
	return errs
}

func setBody(req *http.Request, body []byte) {
	if len(body) == 0 {
		req.Body = http.NoBody
		req.ContentLength = 0
		req.GetBody = nil
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// authenticate checks that the credentials a security scheme asks for are
// present. Whether they are valid is the server's business.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	s := in.SecurityScheme
	switch {
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) == "" {
			return in.NewError(fmt.Errorf("header %s is missing", s.Name))
		}
		return nil
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, token, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return in.NewError(errors.New("no Authorization: Bearer header"))
		}
		return nil
	default:
		return in.NewError(fmt.Errorf("unsupported security scheme %q", in.SecuritySchemeName))
	}
}

func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// skipResponse is the one place where a response escapes schema validation,
// and the rule is narrow on purpose:
//
//   - a status of 500 or above whose body is not JSON: an injected fault or
//     an edge error page (API-NOTES §4), not an API response;
//   - a 429 whose body is exactly the documented global rate-limit envelope
//     (API-NOTES §4: one error with code 971 or 10100, result null). Code
//     971 is below the schema's minimum error code of 1000, so the real
//     body would fail the schema.
//
// Every other response, including a JSON 5xx and any other 429, is checked.
func skipResponse(ex *Exchange) bool {
	if ex.Status >= 500 && !isJSON(ex.ResponseHeader) {
		return true
	}
	if ex.Status == http.StatusTooManyRequests && isJSON(ex.ResponseHeader) {
		var env struct {
			Success  *bool            `json:"success"`
			Errors   []map[string]any `json:"errors"`
			Messages []any            `json:"messages"`
			Result   json.RawMessage  `json:"result"`
		}
		if json.Unmarshal(ex.ResponseBody, &env) != nil {
			return false
		}
		if env.Success == nil || *env.Success || len(env.Errors) != 1 || env.Messages == nil || string(env.Result) != "null" {
			return false
		}
		code, _ := env.Errors[0]["code"].(float64)
		_, hasMsg := env.Errors[0]["message"].(string)
		return hasMsg && (code == 971 || code == 10100)
	}
	return false
}

// checkEnvelope checks the shape every Cloudflare JSON response shares, for
// allowed operations that have no schema of their own.
func checkEnvelope(ex *Exchange) error {
	if skipResponse(ex) {
		return nil
	}
	if !isJSON(ex.ResponseHeader) {
		return fmt.Errorf("Content-Type %q is not JSON", ex.ResponseHeader.Get("Content-Type"))
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(ex.ResponseBody, &env); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	var success bool
	if err := json.Unmarshal(env["success"], &success); err != nil {
		return fmt.Errorf("envelope: success is not a boolean: %w", err)
	}
	for _, k := range []string{"errors", "messages"} {
		var list []json.RawMessage
		if err := json.Unmarshal(env[k], &list); err != nil || list == nil {
			return fmt.Errorf("envelope: %s is not an array", k)
		}
	}
	result, ok := env["result"]
	if !ok {
		return errors.New("envelope: result is missing")
	}
	if !success && string(result) != "null" {
		return errors.New("envelope: result is not null on failure")
	}
	if success != (ex.Status >= 200 && ex.Status < 300) {
		return fmt.Errorf("envelope: success is %t with status %d", success, ex.Status)
	}
	return nil
}

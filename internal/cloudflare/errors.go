package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Error codes of the API v4 envelope that the classifiers below rely on.
const (
	CodeInvalidToken       = 1000  // "Invalid API Token"
	CodeAuthentication     = 10000 // valid credential without permission, or wrong scheme
	CodeNotFound           = 10001 // firewallaccessrules.api.not_found
	CodeDuplicate          = 10009 // firewallaccessrules.api.duplicate_of_existing
	CodeNotEntitled        = 10010 // firewallaccessrules.api.not_entitled
	CodeRateLimited        = 971   // "Please wait and consider throttling your request speed"
	CodeRateLimitedGlobal  = 10100 // "More than 1200 requests per 300 seconds reached"
	CodeRateLimitedLists   = 10040 // lists: "you have been ratelimited please wait and try again"
	CodeUnknownAuthHeaders = 9103  // "Unknown X-Auth-Key or X-Auth-Email"
)

// permanentCode reports error codes that no retry can fix: authentication
// and authorization failures, malformed auth headers, and plan entitlement.
func permanentCode(code int) bool {
	switch code {
	case CodeInvalidToken, CodeAuthentication, CodeNotEntitled, CodeUnknownAuthHeaders,
		9106, 9107, 9109, // missing X-Auth headers, unauthorized
		6003, 6102, 6103: // malformed request headers
		return true
	}
	return false
}

func rateLimitCode(code int) bool {
	switch code {
	case CodeRateLimited, CodeRateLimitedGlobal, CodeRateLimitedLists:
		return true
	}
	return false
}

// ErrNotFound is matched by errors.Is for every error that IsNotFound
// reports, including a zone name that ZoneIDByName could not resolve.
var ErrNotFound = errors.New("cloudflare: not found")

// ErrorDetail is one entry of the envelope's errors array.
type ErrorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// APIError is a response that Cloudflare (or something between it and us)
// answered but that is not a success: a non-2xx status, a 2xx whose envelope
// says success:false, or a body that is not a well-formed envelope.
type APIError struct {
	Method string        // HTTP method of the request
	Path   string        // request path below the base URL, without the query
	Status int           // HTTP status code
	Errors []ErrorDetail // the envelope's errors, when the body was an envelope
	// Body is a short, sanitized snippet of a body that was not a usable
	// envelope (an HTML error page, truncated JSON, ...).
	Body string
	// Reason says, in the client's words, what was wrong with a body that
	// could not be understood; empty when the envelope was well formed.
	Reason string
	// RetryAfter is the delay the server asked for with Retry-After or
	// Retry-After-Ms; zero when absent.
	RetryAfter time.Duration

	envelope bool // the body was a well-formed Cloudflare envelope
}

// Error implements error. It never contains credentials.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("cloudflare: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d %s", d.Code, d.Message)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Body))
	}
	if len(e.Errors) == 0 && e.Reason == "" && e.Body == "" {
		b.WriteString(": no error details")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// HasCode reports whether the envelope carried any of codes.
func (e *APIError) HasCode(codes ...int) bool {
	return e.anyCode(func(code int) bool {
		for _, c := range codes {
			if code == c {
				return true
			}
		}
		return false
	})
}

func (e *APIError) anyCode(match func(int) bool) bool {
	for _, d := range e.Errors {
		if match(d.Code) {
			return true
		}
	}
	return false
}

// Is makes errors.Is(err, ErrNotFound) equivalent to IsNotFound(err).
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.notFound()
}

func (e *APIError) notFound() bool {
	// A 404 counts only when Cloudflare itself said so in an envelope: an
	// HTML 404 from a proxy or a wrong base URL must not turn an unban
	// into a silent success.
	return e.HasCode(CodeNotFound) || (e.Status == 404 && e.envelope)
}

func (e *APIError) rateLimited() bool {
	return e.Status == 429 || e.anyCode(rateLimitCode)
}

func (e *APIError) permanent() bool {
	if e.anyCode(permanentCode) {
		return true
	}
	if e.rateLimited() || e.HasCode(CodeDuplicate) || e.notFound() {
		return false
	}
	switch e.Status {
	case 401, 403:
		return true
	case 404, 408, 409:
		return false
	}
	return e.Status >= 400 && e.Status < 500
}

func (e *APIError) retryable() bool {
	if e.permanent() {
		return false
	}
	if e.rateLimited() {
		return true
	}
	switch {
	case e.Status == 408, e.Status == 409:
		return true
	case e.Status >= 500 && e.Status <= 599:
		return true
	}
	return false
}

// TransportError is a request that got no HTTP response: the connection
// failed, was reset, or the attempt timed out.
type TransportError struct {
	Method, Path string
	Err          error
}

// Error implements error.
func (e *TransportError) Error() string {
	return "cloudflare: " + e.Method + " " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// BulkError reports a list bulk operation that Cloudflare marked failed.
type BulkError struct {
	OperationID string
	Message     string // the operation's error text, e.g. "This list is at the maximum number of items"
}

// Error implements error.
func (e *BulkError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no reason given"
	}
	return "cloudflare: bulk operation " + e.OperationID + " failed: " + msg
}

// IsDuplicate reports whether err is Cloudflare's 10009
// duplicate_of_existing: the access rule already exists and should be adopted.
func IsDuplicate(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.HasCode(CodeDuplicate)
}

// IsNotFound reports whether err says the object does not exist: a JSON 404
// or error code 10001 (an already deleted rule), or ErrNotFound.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound)
}

// IsRateLimited reports whether err is a rate-limit answer: HTTP 429 or
// error codes 971, 10100 or 10040.
func IsRateLimited(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.rateLimited()
}

// IsRetryable reports whether the same request may succeed later:
// transport errors, attempt timeouts, 408, 409, 429 and 5xx (also with
// non-JSON bodies). Permanent errors and cancellations are not retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.retryable()
	}
	var t *TransportError
	if errors.As(err, &t) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// IsPermanent reports whether err can never succeed by retrying:
// authentication or permission failures (401, 403, codes 1000, 10000, 9103,
// ...), validation 4xx answers, and 10010 not_entitled. Duplicates (10009),
// not-found answers and rate limits are not permanent.
func IsPermanent(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.permanent()
}

package cloudflare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// maxBodySize caps how much of a response body is read; a larger body is
	// an error rather than a memory hazard.
	maxBodySize = 8 << 20
	// maxSnippet caps the sanitized body snippet kept in an APIError.
	maxSnippet = 200
	// maxMessage caps each error message taken from an envelope.
	maxMessage = 500
)

// envelope is the API v4 wrapper around every response body. Fields that
// edgeban does not use (messages, ...) are ignored whatever their shape.
type envelope struct {
	Success    *bool           `json:"success"`
	Errors     []wireDetail    `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *wireResultInfo `json:"result_info"`
}

type wireDetail struct {
	Code    flexInt `json:"code"`
	Message string  `json:"message"`
}

type wireResultInfo struct {
	Page       flexInt `json:"page"`
	PerPage    flexInt `json:"per_page"`
	Count      flexInt `json:"count"`
	TotalCount flexInt `json:"total_count"`
	TotalPages flexInt `json:"total_pages"`
	Cursors    *struct {
		Before string `json:"before"`
		After  string `json:"after"`
	} `json:"cursors"`
}

func (w *wireResultInfo) info() ResultInfo {
	var ri ResultInfo
	if w == nil {
		return ri
	}
	ri.Page, ri.PerPage, ri.Count = int(w.Page), int(w.PerPage), int(w.Count)
	ri.TotalCount, ri.TotalPages = int(w.TotalCount), int(w.TotalPages)
	if w.Cursors != nil {
		ri.Cursors.Before, ri.Cursors.After = w.Cursors.Before, w.Cursors.After
	}
	return ri
}

// flexInt is an integer that may arrive as a JSON number with an integral
// value (10009 or 10009.0), as a numeric string, or as null.
type flexInt int

// UnmarshalJSON implements json.Unmarshaler.
func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
		*n = flexInt(i)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return fmt.Errorf("not an integer: %.40q", s)
	}
	*n = flexInt(f)
	return nil
}

// cfTime is a timestamp that may be RFC 3339 with or without fractional
// seconds, without a zone (taken as UTC), empty or null. An unparseable
// string becomes the zero time: timestamps are informative only.
type cfTime time.Time

// UnmarshalJSON implements json.Unmarshaler.
func (t *cfTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("timestamp is not a string")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = cfTime(v)
			return nil
		}
	}
	*t = cfTime{}
	return nil
}

func (t cfTime) time() time.Time { return time.Time(t) }

// decoded is the useful part of a successful envelope.
type decoded struct {
	Result json.RawMessage
	Info   ResultInfo
}

// decodeResponse checks a response and unwraps its envelope. It succeeds
// only for a 2xx status with a JSON content type and a well-formed envelope
// whose success is true; everything else is an *APIError (without Method
// and Path, which the caller fills in).
func decodeResponse(status int, contentType string, body []byte) (decoded, error) {
	e := &APIError{Status: status}
	if !isJSONContentType(contentType) {
		if contentType == "" {
			e.Reason = "response without content type"
		} else {
			e.Reason = "non-JSON response (" + sanitize(contentType, 60) + ")"
		}
		e.Body = snippet(body)
		return decoded{}, e
	}
	if len(bytes.TrimSpace(body)) == 0 {
		e.Reason = "empty JSON body"
		return decoded{}, e
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		e.Reason = "malformed JSON envelope: " + jsonProblem(err)
		e.Body = snippet(body)
		return decoded{}, e
	}
	e.Errors = make([]ErrorDetail, 0, len(env.Errors))
	for _, d := range env.Errors {
		e.Errors = append(e.Errors, ErrorDetail{Code: int(d.Code), Message: sanitize(d.Message, maxMessage)})
	}
	if len(e.Errors) == 0 {
		e.Errors = nil
	}
	if env.Success == nil {
		e.Reason = "malformed JSON envelope: no \"success\" field"
		e.Body = snippet(body)
		return decoded{}, e
	}
	e.envelope = true
	if status < 200 || status > 299 {
		if *env.Success {
			e.Reason = "envelope says success but the HTTP status does not"
		}
		return decoded{}, e
	}
	if !*env.Success {
		if len(e.Errors) == 0 {
			e.Reason = "envelope says success:false without errors"
		}
		return decoded{}, e
	}
	return decoded{Result: env.Result, Info: env.ResultInfo.info()}, nil
}

// isJSONContentType accepts application/json and any +json media type.
func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// jsonProblem describes a decoding error without quoting the body.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s has the wrong type (JSON %s)", typ.Field, typ.Value)
		}
		return fmt.Sprintf("not an object (JSON %s)", typ.Value)
	}
	return sanitize(err.Error(), 120)
}

// snippet returns a short, printable excerpt of a body that is not a usable
// envelope: HTML tags and entities are removed, control characters and runs
// of white space become one space, invalid UTF-8 is dropped, and the result
// is capped at maxSnippet bytes.
func snippet(body []byte) string {
	if len(body) > 4*maxSnippet*8 {
		body = body[:4*maxSnippet*8]
	}
	return sanitize(stripTags(string(body)), maxSnippet)
}

// stripTags removes <...> markup, including comments and the content of
// script and style elements, and decodes HTML entities. Tag names are
// matched ASCII-case-insensitively on the original bytes: lowercasing the
// whole text first would shift byte offsets for characters such as 'İ'.
func stripTags(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		end := ">"
		switch {
		case hasPrefixFold(s[i:], "<script"):
			end = "</script>"
		case hasPrefixFold(s[i:], "<style"):
			end = "</style>"
		case strings.HasPrefix(s[i:], "<!--"):
			end = "-->"
		}
		j := indexFold(s[i:], end)
		if j < 0 {
			break
		}
		i += j + len(end)
		b.WriteByte(' ')
	}
	return html.UnescapeString(b.String())
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case; prefix is ASCII.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && asciiEqualFold(s[:len(prefix)], prefix)
}

// indexFold is strings.Index ignoring ASCII case; sub is short ASCII.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if asciiEqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// sanitize makes s safe to embed in a log line or error: invalid UTF-8 is
// dropped, control and space characters become single spaces, and the
// result is trimmed and capped at max bytes on a rune boundary, with "…"
// marking a cut.
func sanitize(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > max {
			return strings.TrimRight(b.String(), " ") + "…"
		}
		b.WriteRune(r)
	}
	return b.String()
}

// retryAfter reads Retry-After-Ms (milliseconds) or Retry-After (seconds,
// or an HTTP date relative to now), capped at maxRetryAfter. ok is false
// when neither header holds a valid value.
func retryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if ms, ok := parseDelay(h.Get("Retry-After-Ms"), time.Millisecond); ok {
		return ms, true
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, ok := parseDelay(v, time.Second); ok {
		return secs, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// parseDelay parses a non-negative decimal number of units.
func parseDelay(v string, unit time.Duration) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" || v[0] == '+' || v[0] == '-' {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if f*float64(unit) >= float64(maxRetryAfter) {
		return maxRetryAfter, true
	}
	return time.Duration(f * float64(unit)), true
}

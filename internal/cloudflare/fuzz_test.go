package cloudflare

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeResponse feeds arbitrary statuses, content types and bodies to
// the envelope decoder. It must never panic, and must report success only
// for a 2xx JSON response whose envelope says "success": true.
func FuzzDecodeResponse(f *testing.F) {
	seeds := []struct {
		status int
		ctype  string
		body   string
	}{
		{200, "application/json", `{"success":true,"errors":[],"messages":[],"result":{"id":"92f17202ed8bd63d69a66b86a49a8f6b","mode":"block","configuration":{"target":"ip","value":"198.51.100.4"},"created_on":"2014-01-01T05:20:00.12345Z"}}`},
		{200, "application/json; charset=utf-8", `{"success":true,"errors":[],"result":[],"result_info":{"page":1,"per_page":100,"count":0,"total_count":0,"total_pages":0}}`},
		{200, "application/json", `{"success":true,"result":[],"result_info":{"cursors":{"before":"a","after":"b"}}}`},
		{201, "application/json", `{"success":true,"errors":[],"result":{"operation_id":"4da8780eeb215e6cb7f48dd981c4ea02"}}`},
		{400, "application/json", `{"result":null,"success":false,"errors":[{"code":10009,"message":"firewallaccessrules.api.duplicate_of_existing"}],"messages":[]}`},
		{404, "application/json", `{"success":false,"errors":[{"code":10001,"message":"firewallaccessrules.api.not_found"}],"messages":[],"result":null}`},
		{429, "application/json", `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}`},
		{401, "application/json", `{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null}`},
		{200, "application/json", `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}`},
		{500, "application/json", `{"success":true,"errors":[],"result":{}}`},
		{502, "text/html", htmlBadGateway},
		{200, "text/html", `<html>{"success":true}</html>`},
		{200, "application/json", `{"success":true,"result":{"id":`},
		{200, "application/json", `[{"success":true}]`},
		{200, "application/json", `null`},
		{200, "", `{"success":true,"errors":[],"result":{}}`},
		{200, "application/json", `{"success":true,"errors":[{"code":"10009","message":"x"}],"result":{}}`},
		{200, "application/json", `{"success":true,"errors":[{"code":1e400}]}`},
		{-1, "application/json", `{"success":true}`},
		{999, "application/problem+json", `{"success":true}`},
		{200, "application/json", "{\"success\":true,\"result\":\"\xff\xfe\"}"},
		{503, "text/html", "İİİİİİİİİİİİİİİİİİİİ<b>x</b><SCRIPT>ȺȺ</script>"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.ctype, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		res, err := decodeResponse(status, ctype, body)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("success for HTTP %d", status)
			}
			var env struct {
				Success *bool `json:"success"`
			}
			if json.Unmarshal(body, &env) != nil || env.Success == nil || !*env.Success {
				t.Fatalf("success for a body without success:true: %q", body)
			}
			if res.Result != nil && !json.Valid(res.Result) {
				t.Fatalf("result is not valid JSON: %q", res.Result)
			}
			return
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v is a %T, not *APIError", err, err)
		}
		if ae.Status != status {
			t.Fatalf("status %d, want %d", ae.Status, status)
		}
		msg := ae.Error()
		if !utf8.ValidString(ae.Body) || len(ae.Body) > maxSnippet+len("…") {
			t.Fatalf("bad snippet %q", ae.Body)
		}
		if strings.ContainsAny(ae.Body+ae.Reason, "\x00\r\n\x1b") {
			t.Fatalf("control characters in %q", msg)
		}
		for _, d := range ae.Errors {
			if len(d.Message) > maxMessage+len("…") || strings.ContainsAny(d.Message, "\r\n") {
				t.Fatalf("bad message %q", d.Message)
			}
		}
		// The classifiers must not contradict each other.
		if IsRetryable(err) && IsPermanent(err) {
			t.Fatalf("%v is both retryable and permanent", err)
		}
	})
}

// FuzzParseCredentials feeds arbitrary files to the credentials parser.
// It must never panic; every profile it accepts must hold a valid
// credential; and its errors name the file and never contain a secret.
func FuzzParseCredentials(f *testing.F) {
	f.Add(sampleCredentials)
	f.Add("[default]\ntoken = abc\n")
	f.Add("[a]\nemail = a@example.com\nkey = k\nzone = example.com\naccount = 0123\napi = https://api.example.com/v4\n")
	f.Add("[default]\ntoken = abc\n\ntokn = x\n")
	f.Add("[a]\ntoken = abc\n[a]\ntoken = x\n")
	f.Add("[a]\ntoken = 'abc'\n; comment\n# comment\n")
	f.Add("token = abc\n")
	f.Add("[a\n")
	f.Add("[]\n=\n")
	f.Add("\uFEFF[a]\r\ntoken=\"x\"\r\n")
	f.Add("[a]\ntoken = \"\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCredentials(strings.NewReader(in), "fuzz.credentials")
		if err != nil {
			if c != nil {
				t.Fatal("credentials returned with an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz.credentials: ") {
				t.Fatalf("error does not name the file: %q", msg)
			}
			// A token or key value must not be echoed. Only values that
			// look like secrets and occur once in the input are checked,
			// so that a match cannot come from elsewhere.
			for _, line := range strings.Split(in, "\n") {
				k, v, ok := strings.Cut(line, "=")
				k = strings.ToLower(strings.TrimSpace(k))
				v = unquote(strings.TrimSpace(v))
				if ok && (k == "token" || k == "key") && secretLike(v) && strings.Count(in, v) == 1 && strings.Contains(msg, v) {
					t.Fatalf("error reveals a %s: %q", k, msg)
				}
			}
			return
		}
		if len(c.Names()) == 0 {
			t.Fatal("no profiles and no error")
		}
		for _, name := range c.Names() {
			p, err := c.Profile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Auth.Valid(); err != nil {
				t.Fatalf("profile %s accepted with invalid auth: %v", name, err)
			}
			if p.API != "" {
				if _, err := New(Options{BaseURL: p.API, Auth: p.Auth}); err != nil {
					t.Fatalf("profile %s: api accepted by the parser but not by New: %v", name, err)
				}
			}
		}
	})
}

// secretLike reports whether v looks like an API secret: at least 12
// letters, digits, '-' or '_', with both a letter and a digit.
func secretLike(v string) bool {
	if len(v) < 12 || checkID("secret", v) != nil {
		return false
	}
	return strings.ContainsAny(v, "0123456789") && strings.ContainsAny(strings.ToLower(v), "abcdefghijklmnopqrstuvwxyz")
}

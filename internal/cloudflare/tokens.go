package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TokenStatus is the answer of a token verification.
type TokenStatus struct {
	ID        string
	Status    string // active, disabled or expired
	ExpiresOn time.Time
	NotBefore time.Time
}

// VerifyToken checks the client's API token with Cloudflare. account ""
// verifies a user-owned token (/user/tokens/verify); otherwise an
// account-owned token of that account. It fails for Global API Key
// credentials, which have no such endpoint. A status other than "active"
// is reported in TokenStatus, not as an error.
func (c *Client) VerifyToken(ctx context.Context, account string) (TokenStatus, error) {
	if c.auth.Token == "" {
		return TokenStatus{}, errors.New("cloudflare: token verification needs an API token, not a Global API Key")
	}
	path := "/user/tokens/verify"
	if account != "" {
		p, err := idPath("/accounts/", "account", account)
		if err != nil {
			return TokenStatus{}, err
		}
		path = p + "/tokens/verify"
	}
	var w struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		ExpiresOn cfTime `json:"expires_on"`
		NotBefore cfTime `json:"not_before"`
	}
	if err := c.send(ctx, http.MethodGet, path, nil, &w); err != nil {
		return TokenStatus{}, err
	}
	if w.Status == "" {
		return TokenStatus{}, fmt.Errorf("cloudflare: GET %s: success without a token status", path)
	}
	return TokenStatus{ID: w.ID, Status: w.Status, ExpiresOn: w.ExpiresOn.time(), NotBefore: w.NotBefore.time()}, nil
}

// ZoneIDByName looks up a zone's id by its name (GET /zones?name=). A zone
// that the credential cannot see is an error satisfying IsNotFound.
func (c *Client) ZoneIDByName(ctx context.Context, name string) (string, error) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "" || len(name) > 253 || strings.ContainsAny(name, " /?#&=%\t\r\n") {
		return "", fmt.Errorf("cloudflare: invalid zone name %q", name)
	}
	var zones []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if _, err := c.get(ctx, "/zones", url.Values{"name": {name}}, &zones); err != nil {
		return "", err
	}
	var ids []string
	for _, z := range zones {
		if strings.EqualFold(strings.TrimSuffix(z.Name, "."), name) && z.ID != "" {
			ids = append(ids, z.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("cloudflare: zone %q: %w (check the name and the credential's zone permissions)", name, ErrNotFound)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("cloudflare: zone name %q matches %d zones", name, len(ids))
}

package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// List is an account-level custom list, usable by every zone of the
// account in a WAF custom rule such as "ip.src in $f2b_banned".
type List struct {
	ID                    string
	Name                  string
	Description           string
	Kind                  string // ip, hostname, asn or redirect
	NumItems              int
	NumReferencingFilters int
	CreatedOn, ModifiedOn time.Time
}

type wireList struct {
	ID                    string  `json:"id"`
	Name                  string  `json:"name"`
	Description           string  `json:"description"`
	Kind                  string  `json:"kind"`
	NumItems              flexInt `json:"num_items"`
	NumReferencingFilters flexInt `json:"num_referencing_filters"`
	CreatedOn             cfTime  `json:"created_on"`
	ModifiedOn            cfTime  `json:"modified_on"`
}

func (w wireList) list() List {
	return List{ID: w.ID, Name: w.Name, Description: w.Description, Kind: w.Kind,
		NumItems: int(w.NumItems), NumReferencingFilters: int(w.NumReferencingFilters),
		CreatedOn: w.CreatedOn.time(), ModifiedOn: w.ModifiedOn.time()}
}

// ListItemInput is one item to add to an IP list.
type ListItemInput struct {
	IP      string `json:"ip"`
	Comment string `json:"comment,omitempty"`
}

// ListItem is an item of an IP list as the API returns it. Items of other
// list kinds have an empty IP.
type ListItem struct {
	ID                    string
	IP                    string
	Comment               string
	CreatedOn, ModifiedOn time.Time
}

type wireItem struct {
	ID         string `json:"id"`
	IP         string `json:"ip"`
	Comment    string `json:"comment"`
	CreatedOn  cfTime `json:"created_on"`
	ModifiedOn cfTime `json:"modified_on"`
}

// BulkOperation is the state of an asynchronous list write.
type BulkOperation struct {
	ID        string
	Status    string // pending, running, completed or failed
	Error     string // why it failed
	Completed time.Time
}

// Statuses of a BulkOperation.
const (
	BulkPending   = "pending"
	BulkRunning   = "running"
	BulkCompleted = "completed"
	BulkFailed    = "failed"
)

func listsPath(account string) (string, error) {
	p, err := idPath("/accounts/", "account", account)
	return p + "/rules/lists", err
}

func itemsPath(account, listID string) (string, error) {
	p, err := listsPath(account)
	if err != nil {
		return "", err
	}
	if err := checkID("list", listID); err != nil {
		return "", err
	}
	return p + "/" + listID + "/items", nil
}

// Lists returns the account's custom lists.
func (c *Client) Lists(ctx context.Context, account string) ([]List, error) {
	path, err := listsPath(account)
	if err != nil {
		return nil, err
	}
	var ws []wireList
	if _, err := c.get(ctx, path, nil, &ws); err != nil {
		return nil, err
	}
	lists := make([]List, 0, len(ws))
	for _, w := range ws {
		lists = append(lists, w.list())
	}
	return lists, nil
}

// CreateList creates a list. name must match [a-zA-Z0-9_]{1,50} (lowercase
// is safest); kind defaults to "ip". The name and kind cannot change later.
func (c *Client) CreateList(ctx context.Context, account, name, kind, description string) (List, error) {
	path, err := listsPath(account)
	if err != nil {
		return List{}, err
	}
	if err := validListName(name); err != nil {
		return List{}, err
	}
	if kind == "" {
		kind = "ip"
	}
	switch kind {
	case "ip", "hostname", "asn", "redirect":
	default:
		return List{}, fmt.Errorf("cloudflare: invalid list kind %q (want ip, hostname, asn or redirect)", kind)
	}
	if len(description) > 500 {
		return List{}, errors.New("cloudflare: list description is longer than 500 characters")
	}
	body := map[string]string{"name": name, "kind": kind, "description": description}
	var w wireList
	if err := c.send(ctx, http.MethodPost, path, body, &w); err != nil {
		return List{}, err
	}
	if w.ID == "" {
		return List{}, fmt.Errorf("cloudflare: POST %s: success without a list id", path)
	}
	return w.list(), nil
}

func validListName(name string) error {
	if name == "" || len(name) > 50 {
		return fmt.Errorf("cloudflare: list name %q must be 1 to 50 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("cloudflare: list name %q may hold only letters, digits and '_'", name)
		}
	}
	return nil
}

type opResult struct {
	OperationID string `json:"operation_id"`
}

func (c *Client) itemsWrite(ctx context.Context, method, account, listID string, body any) (string, error) {
	path, err := itemsPath(account, listID)
	if err != nil {
		return "", err
	}
	var op opResult
	if err := c.send(ctx, method, path, body, &op); err != nil {
		return "", err
	}
	if op.OperationID == "" {
		return "", fmt.Errorf("cloudflare: %s %s: success without an operation_id", method, path)
	}
	return op.OperationID, nil
}

// AddListItems adds items to a list, or updates the comment of items that
// exist. It returns the id of the asynchronous bulk operation; see
// WaitBulkOperation. Batch items: the Lists API has tight write quotas.
func (c *Client) AddListItems(ctx context.Context, account, listID string, items []ListItemInput) (string, error) {
	if len(items) == 0 {
		return "", errors.New("cloudflare: no list items to add")
	}
	if err := checkItems(items); err != nil {
		return "", err
	}
	return c.itemsWrite(ctx, http.MethodPost, account, listID, items)
}

// ReplaceListItems replaces every item of a list with items; an empty
// slice empties the list. It returns the bulk operation's id.
func (c *Client) ReplaceListItems(ctx context.Context, account, listID string, items []ListItemInput) (string, error) {
	if items == nil {
		items = []ListItemInput{} // "[]", not "null"
	}
	if err := checkItems(items); err != nil {
		return "", err
	}
	return c.itemsWrite(ctx, http.MethodPut, account, listID, items)
}

// checkItems rejects items the API would refuse for certain: an empty IP
// or a comment over 500 characters. Normalize IPs with ListItemFor.
func checkItems(items []ListItemInput) error {
	for i, it := range items {
		if it.IP == "" {
			return fmt.Errorf("cloudflare: list item %d has no ip", i)
		}
		if len(it.Comment) > 500 {
			return fmt.Errorf("cloudflare: list item %d (%s): comment longer than 500 characters", i, it.IP)
		}
	}
	return nil
}

// DeleteListItems deletes the items with the given ids (not IPs) from a
// list. It returns the bulk operation's id.
func (c *Client) DeleteListItems(ctx context.Context, account, listID string, itemIDs []string) (string, error) {
	if len(itemIDs) == 0 {
		return "", errors.New("cloudflare: no list items to delete")
	}
	type ref struct {
		ID string `json:"id"`
	}
	body := struct {
		Items []ref `json:"items"`
	}{make([]ref, 0, len(itemIDs))}
	for _, id := range itemIDs {
		if err := checkID("list item", id); err != nil {
			return "", err
		}
		body.Items = append(body.Items, ref{id})
	}
	return c.itemsWrite(ctx, http.MethodDelete, account, listID, body)
}

// maxItemPages bounds ListItems: 500,000 items at 500 a page, with room.
const maxItemPages = 2000

// ListItems reads a list's items 500 at a time, following cursors.after,
// and calls fn with each page. search is Cloudflare's prefix match ("" for
// all); filter the results exactly on the client. An error from fn stops
// the listing and is returned.
func (c *Client) ListItems(ctx context.Context, account, listID, search string, fn func([]ListItem) error) error {
	path, err := itemsPath(account, listID)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 1; ; page++ {
		if page > maxItemPages {
			return fmt.Errorf("cloudflare: listing items of list %s: more than %d pages", listID, maxItemPages)
		}
		q := url.Values{"per_page": {"500"}}
		if search != "" {
			q.Set("search", search)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var ws []wireItem
		info, err := c.get(ctx, path, q, &ws)
		if err != nil {
			return fmt.Errorf("cloudflare: listing items of list %s, page %d: %w", listID, page, err)
		}
		items := make([]ListItem, 0, len(ws))
		for _, w := range ws {
			items = append(items, ListItem{ID: w.ID, IP: w.IP, Comment: w.Comment,
				CreatedOn: w.CreatedOn.time(), ModifiedOn: w.ModifiedOn.time()})
		}
		if len(items) > 0 {
			if err := fn(items); err != nil {
				return err
			}
		}
		cursor = info.Cursors.After
		if cursor == "" {
			return nil
		}
		if seen[cursor] {
			return fmt.Errorf("cloudflare: listing items of list %s: cursor %q repeats", listID, cursor)
		}
		seen[cursor] = true
	}
}

// BulkOperation returns the state of a list bulk operation.
func (c *Client) BulkOperation(ctx context.Context, account, opID string) (BulkOperation, error) {
	path, err := listsPath(account)
	if err != nil {
		return BulkOperation{}, err
	}
	if err := checkID("operation", opID); err != nil {
		return BulkOperation{}, err
	}
	var w struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		Error     string `json:"error"`
		Completed cfTime `json:"completed"`
	}
	if _, err := c.get(ctx, path+"/bulk_operations/"+opID, nil, &w); err != nil {
		return BulkOperation{}, err
	}
	if w.ID == "" {
		w.ID = opID
	}
	if w.Status == "" {
		return BulkOperation{}, fmt.Errorf("cloudflare: bulk operation %s: success without a status", opID)
	}
	return BulkOperation{ID: w.ID, Status: w.Status, Error: w.Error, Completed: w.Completed.time()}, nil
}

// maxBulkPolls bounds WaitBulkOperation to roughly ten minutes of polling.
const maxBulkPolls = 80

// bulkPollDelay is the wait before poll n (from 0): 250 ms, 0.5 s, then
// 1, 1, 2, 2, 4, 4, 8, 8 … s.
func bulkPollDelay(n int) time.Duration {
	switch n {
	case 0:
		return 250 * time.Millisecond
	case 1:
		return 500 * time.Millisecond
	}
	k := min((n-2)/2, 3)
	return time.Second << k
}

// WaitBulkOperation polls a bulk operation until it completes or fails. A
// failed operation returns the operation and a *BulkError; an operation
// still pending after about ten minutes is an error too.
func (c *Client) WaitBulkOperation(ctx context.Context, account, opID string) (BulkOperation, error) {
	for n := 0; n < maxBulkPolls; n++ {
		if err := c.sleep(ctx, bulkPollDelay(n)); err != nil {
			return BulkOperation{}, fmt.Errorf("cloudflare: waiting for bulk operation %s: %w", opID, err)
		}
		op, err := c.BulkOperation(ctx, account, opID)
		if err != nil {
			return op, fmt.Errorf("cloudflare: waiting for bulk operation %s: %w", opID, err)
		}
		switch strings.ToLower(op.Status) {
		case BulkCompleted:
			return op, nil
		case BulkFailed:
			return op, &BulkError{OperationID: opID, Message: op.Error}
		}
	}
	return BulkOperation{}, fmt.Errorf("cloudflare: bulk operation %s still not done after %d polls", opID, maxBulkPolls)
}

// ListItemFor returns the list item for an address or CIDR, normalized with
// net/netip: an IPv4 address as is, an IPv6 address as its /64 (the form
// every version of the Lists API accepts), an IPv4 CIDR of /8 to /32 and an
// IPv6 CIDR of /12 to /64 masked, with longer IPv6 prefixes widened to /64.
func ListItemFor(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return "", fmt.Errorf("cloudflare: invalid CIDR %q: %w", addr, err)
		}
		p = unmapPrefix(p)
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return "", fmt.Errorf("cloudflare: invalid IP address %q: %w", addr, err)
		}
		if a.Zone() != "" {
			return "", fmt.Errorf("cloudflare: IP address %q has a zone", addr)
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4() {
		if p.Bits() < 8 {
			return "", fmt.Errorf("cloudflare: IPv4 range %s is wider than /8", p.Masked())
		}
		if p.Bits() == 32 {
			return p.Addr().String(), nil
		}
		return p.Masked().String(), nil
	}
	if p.Bits() < 12 {
		return "", fmt.Errorf("cloudflare: IPv6 range %s is wider than /12", p.Masked())
	}
	if p.Bits() > 64 {
		p = netip.PrefixFrom(p.Addr(), 64)
	}
	return p.Masked().String(), nil
}

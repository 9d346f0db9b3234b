package cfsim

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error codes of the lists API that API-NOTES does not document.
const (
	codeListInvalid    = 10020 // name, kind or description invalid, or immutable
	codeListDuplicate  = 10021 // a list with that name exists
	codeListQuota      = 10022 // the plan's number of lists is reached
	codeItemInvalid    = 10023 // an item does not fit the list
	codeListKindPlan   = 10024 // hostname and ASN lists need enterprise
	codeListParam      = 10025 // cursor, per_page or search invalid
	codeListInUse      = 10031 // filters.api.ip_list_in_use
	codeListRateLimit  = 10040 // a bulk operation is in flight, or a lists quota is spent
	maxListItemsOnPage = 500
	defaultItemsOnPage = 25
)

// MaxItemsMessage is the error of a bulk operation that would take the account
// over its list item quota; nothing of the operation is applied.
const MaxItemsMessage = "This list is at the maximum number of items"

var listName = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

type list struct {
	id, name, kind, description string
	seq                         uint64
	created, modified           time.Time
	items                       map[string]*item // by id
	byKey                       map[string]*item // by canonical value
	sorted                      []*item          // nil when out of date
}

// item is one list item. key is its canonical value; ip items also keep the
// parsed prefix (a single address is a full-length prefix) for ordering.
type item struct {
	id       string
	key      string
	ip       netip.Prefix
	asn      int64
	value    json.RawMessage // hostname and redirect items, as sent
	comment  string
	created  time.Time
	modified time.Time
}

type listJSON struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	Description           string `json:"description,omitempty"`
	Kind                  string `json:"kind"`
	NumItems              int    `json:"num_items"`
	NumReferencingFilters int    `json:"num_referencing_filters"`
	CreatedOn             string `json:"created_on"`
	ModifiedOn            string `json:"modified_on"`
}

func (s *Server) listJSON(l *list) listJSON {
	return listJSON{
		ID: l.id, Name: l.name, Description: l.description, Kind: l.kind,
		NumItems: len(l.items), NumReferencingFilters: s.st.references(l.name),
		CreatedOn: timestamp(l.created), ModifiedOn: timestamp(l.modified),
	}
}

func (l *list) itemJSON(it *item) map[string]any {
	m := map[string]any{"id": it.id, "created_on": timestamp(it.created), "modified_on": timestamp(it.modified)}
	switch l.kind {
	case "ip":
		m["ip"] = it.key
	case "asn":
		m["asn"] = it.asn
	default:
		m[l.kind] = it.value
	}
	if it.comment != "" {
		m["comment"] = it.comment
	}
	return m
}

// compareItems orders items as Cloudflare does: IPs by address, then by
// prefix length; ASNs by number; the rest by value.
func (l *list) compareItems(a, b *item) int {
	switch l.kind {
	case "ip":
		if c := a.ip.Addr().Compare(b.ip.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.ip.Bits(), b.ip.Bits())
	case "asn":
		return cmp.Compare(a.asn, b.asn)
	}
	return strings.Compare(a.key, b.key)
}

// ordered returns the items in order. Small operations keep the order up to
// date in O(log n) plus a memmove per item; large ones mark it out of date,
// and the sort happens on the next read.
func (l *list) ordered() []*item {
	if l.sorted == nil {
		l.sorted = make([]*item, 0, len(l.items))
		for _, it := range l.items {
			l.sorted = append(l.sorted, it)
		}
		slices.SortFunc(l.sorted, l.compareItems)
	}
	return l.sorted
}

func (s *Server) accountOf(c *call) *response {
	if c.params["account_id"] != s.cfg.AccountID {
		return s.noRoute(c)
	}
	return nil
}

func (s *Server) findList(c *call) (*list, *response) {
	if res := s.accountOf(c); res != nil {
		return nil, res
	}
	l := s.st.lists[c.params["list_id"]]
	if l == nil {
		return nil, fail(http.StatusNotFound, codeNotFound, "list not found")
	}
	return l, nil
}

func (s *Server) listLists(c *call) *response {
	if res := s.accountOf(c); res != nil {
		return res
	}
	ls := make([]*list, 0, len(s.st.lists))
	for _, l := range s.st.lists {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *list) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]listJSON, len(ls))
	for i, l := range ls {
		out[i] = s.listJSON(l)
	}
	return ok(out)
}

func (s *Server) createList(c *call) *response {
	if res := s.accountOf(c); res != nil {
		return res
	}
	var in struct {
		Name        *string `json:"name"`
		Kind        *string `json:"kind"`
		Description string  `json:"description"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if in.Name == nil || !listName.MatchString(*in.Name) || len(*in.Name) > 50 {
		return fail(http.StatusBadRequest, codeListInvalid,
			"list name must be 1 to 50 characters of letters, digits and underscores")
	}
	if in.Kind == nil || !slices.Contains([]string{"ip", "redirect", "hostname", "asn"}, *in.Kind) {
		return fail(http.StatusBadRequest, codeListInvalid, "list kind must be ip, redirect, hostname or asn")
	}
	if len(in.Description) > 500 {
		return fail(http.StatusBadRequest, codeListInvalid, "list description must be at most 500 characters")
	}
	if (*in.Kind == "hostname" || *in.Kind == "asn") && s.cfg.Plan != PlanEnterprise {
		return failf(http.StatusBadRequest, codeListKindPlan, "%s lists need the enterprise plan", *in.Kind)
	}
	for _, l := range s.st.lists {
		if strings.EqualFold(l.name, *in.Name) {
			return failf(http.StatusBadRequest, codeListDuplicate, "a list named %q already exists", l.name)
		}
	}
	if len(s.st.lists) >= s.cfg.MaxLists {
		return failf(http.StatusBadRequest, codeListQuota,
			"the account has reached its maximum of %d lists for the %s plan", s.cfg.MaxLists, s.cfg.Plan)
	}
	s.st.seq++
	l := &list{
		id: s.newID(), seq: s.st.seq, name: *in.Name, kind: *in.Kind, description: in.Description,
		created: c.now, modified: c.now, items: make(map[string]*item), byKey: make(map[string]*item),
	}
	s.st.lists[l.id] = l
	return ok(s.listJSON(l))
}

func (s *Server) getList(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	return ok(s.listJSON(l))
}

func (s *Server) updateList(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	var in struct {
		Description *string `json:"description"`
		Name        *string `json:"name"`
		Kind        *string `json:"kind"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if (in.Name != nil && *in.Name != l.name) || (in.Kind != nil && *in.Kind != l.kind) {
		return fail(http.StatusBadRequest, codeListInvalid, "the name and kind of a list cannot be changed")
	}
	if in.Description != nil {
		if len(*in.Description) > 500 {
			return fail(http.StatusBadRequest, codeListInvalid, "list description must be at most 500 characters")
		}
		l.description = *in.Description
	}
	l.modified = c.now
	return ok(s.listJSON(l))
}

func (s *Server) deleteList(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	if res := decodeBody(c.body, new(json.RawMessage), true); res != nil {
		return res
	}
	if op := s.st.pending; op != nil && op.listID == l.id {
		return s.busy(c.now, op)
	}
	if n := s.st.references(l.name); n > 0 {
		return failf(http.StatusBadRequest, codeListInUse,
			"filters.api.ip_list_in_use: list %s is referenced by %d rule(s); delete them first", l.name, n)
	}
	s.st.totalItems -= len(l.items)
	delete(s.st.lists, l.id)
	return ok(map[string]string{"id": l.id})
}

// cursor encodes a position in a list's order: after ("a") or before ("b")
// the item whose canonical value is key.
func encodeCursor(dir byte, key string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{dir}, key...))
}

func (l *list) decodeCursor(cur string) (byte, *item, bool) {
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || len(b) < 2 || (b[0] != 'a' && b[0] != 'b') {
		return 0, nil, false
	}
	probe, ok := l.parseKey(string(b[1:]))
	return b[0], probe, ok
}

// parseKey turns a canonical value back into an item for comparisons.
func (l *list) parseKey(key string) (*item, bool) {
	it := &item{key: key}
	switch l.kind {
	case "ip":
		p, ok := parseIPKey(key)
		if !ok {
			return nil, false
		}
		it.ip = p
	case "asn":
		n, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			return nil, false
		}
		it.asn = n
	}
	return it, true
}

func parseIPKey(key string) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(key); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(key)
	return p, err == nil
}

func (s *Server) listItems(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	perPage := defaultItemsOnPage
	if v := c.query.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListItemsOnPage {
			return failf(http.StatusBadRequest, codeListParam, "per_page must be an integer from 1 to %d", maxListItemsOnPage)
		}
		perPage = n
	}
	items := l.ordered()
	if search := c.query.Get("search"); search != "" {
		items = l.search(items, search)
	}
	start, end := 0, min(perPage, len(items))
	if cur := c.query.Get("cursor"); cur != "" {
		dir, probe, ok := l.decodeCursor(cur)
		if !ok {
			return fail(http.StatusBadRequest, codeListParam, "invalid cursor")
		}
		if dir == 'a' {
			start, _ = slices.BinarySearchFunc(items, probe, l.compareItems)
			if start < len(items) && l.compareItems(items[start], probe) == 0 {
				start++
			}
			end = min(start+perPage, len(items))
		} else {
			end, _ = slices.BinarySearchFunc(items, probe, l.compareItems)
			start = max(end-perPage, 0)
		}
	}
	out := make([]map[string]any, 0, end-start)
	for _, it := range items[start:end] {
		out = append(out, l.itemJSON(it))
	}
	cursors := map[string]string{}
	if end < len(items) && end > start {
		cursors["after"] = encodeCursor('a', items[end-1].key)
	}
	if start > 0 && end > start {
		cursors["before"] = encodeCursor('b', items[start].key)
	}
	return okInfo(out, map[string]any{"cursors": cursors})
}

// search filters items as the API documents: IPs start with the string,
// hostnames and redirects contain it, ASNs equal it.
func (l *list) search(items []*item, q string) []*item {
	q = strings.ToLower(q)
	var out []*item
	for _, it := range items {
		var hit bool
		switch l.kind {
		case "ip":
			hit = strings.HasPrefix(it.key, q)
		case "asn":
			hit = it.key == q
		default:
			hit = strings.Contains(strings.ToLower(it.key), q)
		}
		if hit {
			out = append(out, it)
		}
	}
	return out
}

func (s *Server) getItem(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	it := l.items[c.params["item_id"]]
	if it == nil {
		return fail(http.StatusNotFound, codeNotFound, "list item not found")
	}
	return ok(l.itemJSON(it))
}

// bulkOp is an asynchronous list write.
type bulkOp struct {
	id        string
	listID    string
	action    string // "append", "replace" or "delete"
	items     []*item
	deleteIDs []string
	created   time.Time
	due       time.Time
	status    string
	err       string
	completed time.Time
}

func (op *bulkOp) statusAt(now time.Time, delay time.Duration) string {
	if op.status == "completed" || op.status == "failed" {
		return op.status
	}
	if now.Before(op.created.Add(delay / 3)) {
		return "pending"
	}
	return "running"
}

// busy is the answer to a list write while a bulk operation is in flight
// (API-NOTES §2.1, §2.6).
func (s *Server) busy(now time.Time, op *bulkOp) *response {
	res := failf(http.StatusTooManyRequests, codeListRateLimit,
		"you have been ratelimited please wait and try again: bulk operation %s is still %s; send the next list write after it completes",
		op.id, op.statusAt(now, s.cfg.BulkDelay))
	res.header = http.Header{"Retry-After": {strconv.Itoa(max(1, ceilSeconds(op.due.Sub(now))))}}
	return res
}

// writeItems serves POST (append, upsert), PUT (replace all) and DELETE
// (by id) on a list's items. It validates synchronously and applies when the
// bulk operation completes.
func (s *Server) writeItems(c *call) *response {
	l, res := s.findList(c)
	if res != nil {
		return res
	}
	op := &bulkOp{listID: l.id}
	switch c.r.Method {
	case http.MethodPost, http.MethodPut:
		op.action = "append"
		if c.r.Method == http.MethodPut {
			op.action = "replace"
		}
		var raw []map[string]json.RawMessage
		if res := decodeBody(c.body, &raw, false); res != nil {
			return res
		}
		if len(raw) == 0 && op.action == "append" {
			return fail(http.StatusBadRequest, codeItemInvalid, "at least one item is required")
		}
		op.items = make([]*item, 0, len(raw))
		for i, r := range raw {
			it, msg := s.parseItem(l, r)
			if msg != "" {
				return failf(http.StatusBadRequest, codeItemInvalid, "item %d: %s", i, msg)
			}
			op.items = append(op.items, it)
		}
	case http.MethodDelete:
		op.action = "delete"
		var in struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if res := decodeBody(c.body, &in, false); res != nil {
			return res
		}
		if len(in.Items) == 0 {
			return fail(http.StatusBadRequest, codeItemInvalid, `the body must be {"items":[{"id":"..."}]} with at least one item`)
		}
		for i, it := range in.Items {
			if it.ID == "" {
				return failf(http.StatusBadRequest, codeItemInvalid, "item %d: id is required", i)
			}
			op.deleteIDs = append(op.deleteIDs, it.ID)
		}
	}
	if p := s.st.pending; p != nil {
		return s.busy(c.now, p)
	}
	changes := len(op.items) + len(op.deleteIDs)
	if op.action == "replace" {
		changes += len(l.items)
	}
	if res := s.st.listQuota(&s.cfg, c.now, changes); res != nil {
		return res
	}
	op.id = s.newID()
	op.created = c.now
	op.due = c.now.Add(max(s.cfg.BulkDelay, 0))
	op.status = "pending"
	s.st.ops[op.id] = op
	s.st.opOrder = append(s.st.opOrder, op)
	s.st.pending = op
	if s.cfg.BulkDelay < 0 {
		s.tickLocked(c.now)
	}
	return ok(map[string]string{"operation_id": op.id})
}

// parseItem validates one item of a write and returns it with its canonical
// key, or a message saying what is wrong.
func (s *Server) parseItem(l *list, r map[string]json.RawMessage) (*item, string) {
	it := &item{}
	if c, ok := r["comment"]; ok {
		if err := json.Unmarshal(c, &it.comment); err != nil {
			return nil, "comment must be a string"
		}
		if len(it.comment) > 500 {
			return nil, "comment must be at most 500 characters"
		}
	}
	for _, k := range []string{"ip", "asn", "hostname", "redirect"} {
		if _, ok := r[k]; ok && k != l.kind {
			return nil, k + " items do not belong in a list of kind " + l.kind
		}
	}
	v, ok := r[l.kind]
	if !ok {
		return nil, l.kind + " is required"
	}
	switch l.kind {
	case "ip":
		var ip string
		if err := json.Unmarshal(v, &ip); err != nil {
			return nil, "ip must be a string"
		}
		p, key, msg := s.normalizeItemIP(ip)
		if msg != "" {
			return nil, msg
		}
		it.ip, it.key = p, key
	case "asn":
		if err := json.Unmarshal(v, &it.asn); err != nil || it.asn < 0 || it.asn > 1<<32-1 {
			return nil, "asn must be a non-negative 32 bit integer"
		}
		it.key = strconv.FormatInt(it.asn, 10)
	case "hostname":
		var h struct {
			URLHostname string `json:"url_hostname"`
		}
		if err := json.Unmarshal(v, &h); err != nil || h.URLHostname == "" {
			return nil, "hostname must be an object with url_hostname"
		}
		it.key, it.value = strings.ToLower(h.URLHostname), v
	case "redirect":
		var rd struct {
			SourceURL string `json:"source_url"`
			TargetURL string `json:"target_url"`
		}
		if err := json.Unmarshal(v, &rd); err != nil || rd.SourceURL == "" || rd.TargetURL == "" {
			return nil, "redirect must be an object with source_url and target_url"
		}
		it.key, it.value = rd.SourceURL, v
	}
	return it, ""
}

// normalizeItemIP validates an IP list item (API-NOTES §2.2) and returns its
// canonical form: IPv6 lower case and compressed, /32 and /128 as plain
// addresses. CIDRs must have no host bits set. With Config.IPv6Strict,
// IPv6 must be a CIDR of /4 to /64, as in the 2024 schema.
func (s *Server) normalizeItemIP(v string) (netip.Prefix, string, string) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, "", "IP " + v + " has a zone"
		}
		if a.Is6() && s.cfg.IPv6Strict {
			return netip.Prefix{}, "", "IPv6 " + v + " must be written as a CIDR of /64 or shorter"
		}
		return netip.PrefixFrom(a, a.BitLen()), a.String(), ""
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, "", v + " is not an IP address or CIDR"
	}
	if p.Masked() != p {
		return netip.Prefix{}, "", v + " has host bits set; send " + p.Masked().String()
	}
	if p.Addr().Is4() {
		if p.Bits() < 8 {
			return netip.Prefix{}, "", "IPv4 CIDRs must be /8 to /32"
		}
		if p.Bits() == 32 {
			return p, p.Addr().String(), ""
		}
		return p, p.String(), ""
	}
	if p.Bits() < 4 {
		return netip.Prefix{}, "", "IPv6 CIDRs must be /4 or longer"
	}
	if s.cfg.IPv6Strict && p.Bits() > 64 {
		return netip.Prefix{}, "", "IPv6 CIDRs must be /64 or shorter"
	}
	if p.Bits() == 128 {
		return p, p.Addr().String(), ""
	}
	return p, p.String(), ""
}

// tickLocked completes the pending bulk operation once it is due.
func (s *Server) tickLocked(now time.Time) {
	op := s.st.pending
	if op == nil || now.Before(op.due) {
		return
	}
	s.st.pending = nil
	op.completed = op.due
	l := s.st.lists[op.listID]
	if l == nil {
		op.status, op.err = "failed", "list not found"
		return
	}
	if msg := s.applyOp(l, op); msg != "" {
		op.status, op.err = "failed", msg
		s.log.Info("cfsim: bulk operation failed", "operation", op.id, "list", l.name, "error", msg)
	} else {
		op.status = "completed"
	}
	op.items, op.deleteIDs = nil, nil
}

// incrementalOrder is the largest operation that keeps a list's order up
// to date item by item rather than re-sorting on the next read.
const incrementalOrder = 256

// sortedInsert and sortedRemove keep list.sorted in order when it is
// up to date.
func (l *list) sortedInsert(it *item) {
	if l.sorted == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(l.sorted, it, l.compareItems)
	l.sorted = slices.Insert(l.sorted, i, it)
}

func (l *list) sortedRemove(it *item) {
	if l.sorted == nil {
		return
	}
	if i, found := slices.BinarySearchFunc(l.sorted, it, l.compareItems); found {
		l.sorted = slices.Delete(l.sorted, i, i+1)
	}
}

// applyOp applies a due operation, or nothing when it would exceed the
// account's item quota.
func (s *Server) applyOp(l *list, op *bulkOp) string {
	at := op.due
	if op.action == "replace" || len(op.items)+len(op.deleteIDs) > incrementalOrder {
		l.sorted = nil
	}
	switch op.action {
	case "append":
		// Later duplicates in one request win.
		fresh := make(map[string]bool)
		for _, it := range op.items {
			if l.byKey[it.key] == nil {
				fresh[it.key] = true
			}
		}
		if s.st.totalItems+len(fresh) > s.cfg.MaxListItems {
			return MaxItemsMessage
		}
		for _, it := range op.items {
			if old := l.byKey[it.key]; old != nil {
				old.comment, old.modified = it.comment, at
				continue
			}
			s.addItem(l, it, at)
		}
	case "replace":
		unique := make(map[string]*item, len(op.items))
		for _, it := range op.items {
			unique[it.key] = it
		}
		if s.st.totalItems-len(l.items)+len(unique) > s.cfg.MaxListItems {
			return MaxItemsMessage
		}
		s.st.totalItems -= len(l.items)
		l.items = make(map[string]*item, len(unique))
		l.byKey = make(map[string]*item, len(unique))
		for _, it := range op.items {
			if unique[it.key] == it {
				s.addItem(l, it, at)
			}
		}
	case "delete":
		for _, id := range op.deleteIDs {
			if it := l.items[id]; it != nil {
				delete(l.items, id)
				delete(l.byKey, it.key)
				l.sortedRemove(it)
				s.st.totalItems--
			}
		}
	}
	l.modified = at
	return ""
}

func (s *Server) addItem(l *list, it *item, at time.Time) {
	it.id = s.newID()
	for l.items[it.id] != nil {
		it.id = s.newID()
	}
	it.created, it.modified = at, at
	l.items[it.id] = it
	l.byKey[it.key] = it
	l.sortedInsert(it)
	s.st.totalItems++
}

type bulkOpJSON struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Completed string `json:"completed,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (s *Server) getBulkOperation(c *call) *response {
	if res := s.accountOf(c); res != nil {
		return res
	}
	op := s.st.ops[c.params["operation_id"]]
	if op == nil {
		return fail(http.StatusNotFound, codeNotFound, "bulk operation not found")
	}
	out := bulkOpJSON{ID: op.id, Status: op.statusAt(c.now, s.cfg.BulkDelay), Error: op.err}
	if !op.completed.IsZero() {
		out.Completed = timestamp(op.completed)
	}
	return ok(out)
}

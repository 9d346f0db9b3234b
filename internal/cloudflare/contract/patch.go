package contract

import (
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/getkin/kin-openapi/openapi3"
)

// patch fixes, in the loaded document, the defects of the 2024 subset that
// make real Cloudflare traffic fail validation. The JSON file itself is never
// edited. Each step names the API-NOTES §5.2 item it implements; the steps
// marked "beyond §5.2" fix defects that the notes do not list but that the
// same traffic trips over. A step that finds nothing to patch is an error, so
// that a changed schema is noticed instead of silently validated differently.
func patch(doc *openapi3.T) error {
	steps := []struct {
		name string
		fn   func(*openapi3.T) error
	}{
		{"§5.2 item 2: api_token as an alternative security", patchBearer},
		{"§5.2 item 3: zone POST notes optional", patchZoneNotes},
		{"§5.2 item 4: DELETE request bodies optional", patchDeleteBodies},
		{"§5.2 item 6: lists result types", patchListsResult},
		{"§5.2 item 6: lists_item oneOf", patchListsItem},
		{"beyond §5.2: 4XX failure envelopes", patchFailureEnvelopes},
		{"beyond §5.2: account access rule PATCH body", patchAccountRulePatchBody},
		{"beyond §5.2: entry point ruleset PUT body", patchEntrypointBody},
		{"beyond §5.2: rulesets failure result null", patchRulesetsNullResult},
		{"beyond §5.2: rulesets action pattern", patchRuleActionPattern},
	}
	for _, s := range steps {
		if err := s.fn(doc); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// operations calls fn for every operation of the document in a stable order.
func operations(doc *openapi3.T, fn func(path, method string, op *openapi3.Operation)) {
	paths := doc.Paths.Map()
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, p := range keys {
		ops := paths[p].Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			fn(p, m, ops[m])
		}
	}
}

func schemaOf(doc *openapi3.T, name string) (*openapi3.Schema, error) {
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return nil, fmt.Errorf("schema %s not found", name)
	}
	return ref.Value, nil
}

// patchBearer implements API-NOTES §5.2 item 2: the firewall and lists
// operations declare only api_email+api_key, but Cloudflare accepts an API
// token there too. Every operation that has no api_token requirement gets
// {api_token} as an alternative.
func patchBearer(doc *openapi3.T) error {
	n := 0
	operations(doc, func(_, _ string, op *openapi3.Operation) {
		if op.Security == nil {
			return
		}
		for _, req := range *op.Security {
			if _, ok := req["api_token"]; ok {
				return
			}
		}
		*op.Security = append(*op.Security, openapi3.SecurityRequirement{"api_token": []string{}})
		n++
	})
	if n == 0 {
		return fmt.Errorf("no operation without api_token")
	}
	return nil
}

// patchZoneNotes implements API-NOTES §5.2 item 3: the zone-level create
// requires notes in 2024; the current API makes it optional.
func patchZoneNotes(doc *openapi3.T) error {
	item := doc.Paths.Value("/zones/{zone_id}/firewall/access_rules/rules")
	if item == nil || item.Post == nil || item.Post.RequestBody == nil || item.Post.RequestBody.Value == nil {
		return fmt.Errorf("zone access rule POST not found")
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("zone access rule POST has no JSON schema")
	}
	s := mt.Schema.Value
	if !slices.Contains(s.Required, "notes") {
		return fmt.Errorf("notes is not required")
	}
	s.Required = slices.DeleteFunc(slices.Clone(s.Required), func(k string) bool { return k == "notes" })
	return nil
}

// patchDeleteBodies implements API-NOTES §5.2 item 4: every DELETE declares a
// required body, but the SDKs send none on rule and list deletes. The body
// becomes optional on every DELETE except the one that carries the items to
// delete (lists-delete-list-items), where the body is the request.
func patchDeleteBodies(doc *openapi3.T) error {
	n := 0
	operations(doc, func(_, method string, op *openapi3.Operation) {
		if method != http.MethodDelete || op.RequestBody == nil || op.RequestBody.Value == nil {
			return
		}
		if op.OperationID == "lists-delete-list-items" {
			return
		}
		if op.RequestBody.Value.Required {
			op.RequestBody.Value.Required = false
			n++
		}
	})
	if n == 0 {
		return fmt.Errorf("no DELETE with a required body")
	}
	return nil
}

// patchListsResult implements the first half of API-NOTES §5.2 item 6: the
// lists response schemas are allOf lists_api-response-collection (whose
// result is an array) with a schema whose result is an object, so no
// object-valued response can ever match. The shared collection schema stops
// constraining result; the schemas that really return arrays
// (lists_lists-response-collection, lists_items-list-response-collection)
// keep their own array type.
func patchListsResult(doc *openapi3.T) error {
	s, err := schemaOf(doc, "lists_api-response-collection")
	if err != nil {
		return err
	}
	found := false
	for _, part := range s.AllOf {
		if part.Value == nil {
			continue
		}
		if r := part.Value.Properties["result"]; r != nil && r.Value != nil && r.Value.Type.Is(openapi3.TypeArray) {
			part.Value.Properties["result"] = &openapi3.SchemaRef{Value: &openapi3.Schema{Nullable: true}}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("lists_api-response-collection has no array-typed result")
	}
	return nil
}

// patchListsItem implements the second half of API-NOTES §5.2 item 6:
// lists_item is an object whose oneOf lists the value schemas (a string for
// ip, an integer for asn, ...) instead of objects holding them, so no item
// matches. The oneOf becomes "exactly one of ip, redirect, hostname, asn is
// present", which is what it means.
func patchListsItem(doc *openapi3.T) error {
	s, err := schemaOf(doc, "lists_item")
	if err != nil {
		return err
	}
	if len(s.OneOf) == 0 {
		return fmt.Errorf("lists_item has no oneOf")
	}
	var alts openapi3.SchemaRefs
	for _, k := range []string{"ip", "redirect", "hostname", "asn"} {
		if s.Properties[k] == nil {
			return fmt.Errorf("lists_item has no %s property", k)
		}
		alts = append(alts, &openapi3.SchemaRef{Value: &openapi3.Schema{Required: []string{k}}})
	}
	s.OneOf = alts
	return nil
}

// patchFailureEnvelopes fixes a defect beyond §5.2: the 4XX response of every
// firewall, lists and token operation is allOf the success envelope
// (success: enum [true], result: object) and the failure envelope (success:
// enum [false], result: null), which no body can satisfy. The failure
// envelope alone is what Cloudflare sends.
func patchFailureEnvelopes(doc *openapi3.T) error {
	n := 0
	var bad []string
	operations(doc, func(path, method string, op *openapi3.Operation) {
		ref := op.Responses.Value("4XX")
		if ref == nil || ref.Value == nil || ref.Ref != "" {
			return // a shared response such as rulesets_Failure, which is consistent
		}
		mt := ref.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
			bad = append(bad, method+" "+path)
			return
		}
		all := mt.Schema.Value.AllOf
		if len(all) != 2 || !isFailureRef(all[1].Ref) {
			bad = append(bad, method+" "+path)
			return
		}
		// Replace the response object rather than editing the shared schema.
		resp := *ref.Value
		resp.Content = openapi3.NewContentWithJSONSchemaRef(all[1])
		op.Responses.Set("4XX", &openapi3.ResponseRef{Value: &resp})
		n++
	})
	if len(bad) > 0 {
		return fmt.Errorf("unexpected 4XX schema in %v", bad)
	}
	if n == 0 {
		return fmt.Errorf("no contradictory 4XX schema")
	}
	return nil
}

func isFailureRef(ref string) bool {
	switch ref {
	case "#/components/schemas/firewall_api-response-common-failure",
		"#/components/schemas/lists_api-response-common-failure",
		"#/components/schemas/iam_api-response-common-failure":
		return true
	}
	return false
}

// patchAccountRulePatchBody fixes a defect beyond §5.2: the account-level
// PATCH takes the whole rule (firewall_schemas-rule, which requires mode and
// configuration), while the API, like the user and zone PATCH in the same
// schema, takes {mode?, notes?}. The body schema becomes the zone PATCH's.
func patchAccountRulePatchBody(doc *openapi3.T) error {
	zone := doc.Paths.Value("/zones/{zone_id}/firewall/access_rules/rules/{identifier}")
	account := doc.Paths.Value("/accounts/{account_identifier}/firewall/access_rules/rules/{identifier}")
	if zone == nil || zone.Patch == nil || account == nil || account.Patch == nil {
		return fmt.Errorf("access rule PATCH operations not found")
	}
	zb, ab := zone.Patch.RequestBody, account.Patch.RequestBody
	if zb == nil || zb.Value == nil || ab == nil || ab.Value == nil {
		return fmt.Errorf("access rule PATCH bodies not found")
	}
	zmt, amt := zb.Value.Content.Get("application/json"), ab.Value.Content.Get("application/json")
	if zmt == nil || amt == nil || amt.Schema == nil || amt.Schema.Ref != "#/components/schemas/firewall_schemas-rule" {
		return fmt.Errorf("account PATCH body is not firewall_schemas-rule")
	}
	body := *ab.Value
	body.Content = openapi3.NewContentWithJSONSchemaRef(zmt.Schema)
	account.Patch.RequestBody = &openapi3.RequestBodyRef{Value: &body}
	return nil
}

// patchEntrypointBody fixes a defect beyond §5.2: the entry point PUT body is
// allOf rulesets_Ruleset, which requires id, version and last_updated. Those
// are server-assigned (version and last_updated are readOnly, id is readOnly
// only inside an allOf, which validators do not look into), and the
// documented request (API-NOTES §2.5) sends only the rules. The request body
// gets its own copy of the ruleset schema without those requirements.
func patchEntrypointBody(doc *openapi3.T) error {
	rb := doc.Components.RequestBodies["rulesets_UpdateEntrypointRuleset"]
	if rb == nil || rb.Value == nil {
		return fmt.Errorf("request body rulesets_UpdateEntrypointRuleset not found")
	}
	mt := rb.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("rulesets_UpdateEntrypointRuleset has no JSON schema")
	}
	for i, part := range mt.Schema.Value.AllOf {
		if part.Ref != "#/components/schemas/rulesets_Ruleset" || part.Value == nil {
			continue
		}
		ruleset := *part.Value
		ruleset.Required = slices.DeleteFunc(slices.Clone(ruleset.Required), func(k string) bool {
			return k == "id" || k == "version" || k == "last_updated"
		})
		mt.Schema.Value.AllOf[i] = &openapi3.SchemaRef{Value: &ruleset}
		return nil
	}
	return fmt.Errorf("rulesets_UpdateEntrypointRuleset is not allOf rulesets_Ruleset")
}

// patchRulesetsNullResult fixes a defect beyond §5.2: rulesets_Failure says
// result is enum [null] without nullable, which OpenAPI 3.0 reads as "no
// value at all", so the documented failure body ({"result": null}) never
// matches. Both result schemas of the failure response become nullable.
func patchRulesetsNullResult(doc *openapi3.T) error {
	ref := doc.Components.Responses["rulesets_Failure"]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("response rulesets_Failure not found")
	}
	mt := ref.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("rulesets_Failure has no JSON schema")
	}
	n := 0
	for i, part := range mt.Schema.Value.AllOf {
		if part.Value == nil || part.Value.Properties["result"] == nil {
			continue
		}
		// Copy the part so the shared rulesets_Response used by successes is untouched.
		cp := *part.Value
		cp.Properties = make(openapi3.Schemas, len(part.Value.Properties))
		for k, p := range part.Value.Properties {
			cp.Properties[k] = p
		}
		result := *part.Value.Properties["result"].Value
		result.Nullable = true
		cp.Properties["result"] = &openapi3.SchemaRef{Value: &result}
		mt.Schema.Value.AllOf[i] = &openapi3.SchemaRef{Value: &cp}
		n++
	}
	if n == 0 {
		return fmt.Errorf("rulesets_Failure declares no result")
	}
	return nil
}

// patchRuleActionPattern fixes a defect beyond §5.2: rulesets_RuleAction's
// pattern ^[a-z]+$ rejects the schema's own actions with an underscore
// (managed_challenge, js_challenge, set_config, ...), which its discriminator
// maps. The pattern admits underscores.
func patchRuleActionPattern(doc *openapi3.T) error {
	s, err := schemaOf(doc, "rulesets_RuleAction")
	if err != nil {
		return err
	}
	if s.Pattern != "^[a-z]+$" {
		return fmt.Errorf("rulesets_RuleAction pattern is %q", s.Pattern)
	}
	s.Pattern = "^[a-z_]+$"
	return nil
}

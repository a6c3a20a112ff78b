package event

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// check applies the rules JSON Schema cannot express (RULES.md), on an
// event that passed the scan.
func (d *Decoder) check(s *scanner, ev *Event) *Error {
	schemaErr := func(field, format string, args ...any) *Error {
		return &Error{Class: ClassSchema, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if ev.Op == OpUpsert && !s.vecPresent {
		if !d.lim.EmbedderConfigured {
			return schemaErr("vector", "required for upsert (no embedder configured)")
		}
		if !ev.HasText {
			return schemaErr("text", "required for an upsert without vector")
		}
	}
	if s.vecPresent && s.vecLen != d.lim.Dims {
		return schemaErr("vector", "length %d, want %d", s.vecLen, d.lim.Dims)
	}
	if len(ev.Entities) == 0 && len(ev.Relations) == 0 {
		return nil
	}
	// Entities are few per event: compare pairwise below 16, index above.
	var index map[string]int
	if len(ev.Entities) > 16 {
		index = make(map[string]int, len(ev.Entities))
	}
	find := func(id string, upto int) int {
		if index != nil {
			if i, ok := index[id]; ok && i < upto {
				return i
			}
			return -1
		}
		for i := 0; i < upto; i++ {
			if ev.Entities[i].ID == id {
				return i
			}
		}
		return -1
	}
	for i := range ev.Entities {
		id := ev.Entities[i].ID
		if j := find(id, i); j >= 0 {
			return schemaErr(fmt.Sprintf("entities[%d].id", i), "duplicate entity %q (also entities[%d])", id, j)
		}
		if index != nil {
			index[id] = i
		}
	}
	n := len(ev.Entities)
	for i := range ev.Relations {
		r := &ev.Relations[i]
		if find(r.From, n) < 0 {
			return schemaErr(fmt.Sprintf("relations[%d].from", i), "unknown entity %q", r.From)
		}
		if find(r.To, n) < 0 {
			return schemaErr(fmt.Sprintf("relations[%d].to", i), "unknown entity %q", r.To)
		}
	}
	if len(ev.Relations) > 1 {
		type triple struct{ from, typ, to string }
		seen := make(map[triple]int, len(ev.Relations))
		for i := range ev.Relations {
			r := &ev.Relations[i]
			t := triple{r.From, r.Type, r.To}
			if j, dup := seen[t]; dup {
				return schemaErr(fmt.Sprintf("relations[%d]", i), "duplicate relation (%s)-[%s]->(%s) (also relations[%d])", r.From, r.Type, r.To, j)
			}
			seen[t] = i
		}
	}
	return nil
}

// tombstone decodes a record with a null value from its key.
func (d *Decoder) tombstone(key []byte, ev *Event) *Error {
	keyErr := func(class, format string, args ...any) *Error {
		return &Error{Class: class, Field: "key", Msg: fmt.Sprintf(format, args...)}
	}
	if len(key) == 0 {
		return keyErr(ClassSchema, "required when the value is null (a tombstone)")
	}
	if !utf8.Valid(key) {
		return keyErr(ClassDecode, "invalid UTF-8 in tombstone key %q", key)
	}
	i := bytes.IndexByte(key, '/')
	if i < 0 {
		return keyErr(ClassSchema, "tombstone key %q is not tenant/id", key)
	}
	tenant, id := key[:i], key[i+1:]
	switch {
	case !tenantOK(tenant):
		return keyErr(ClassSchema, "tenant %q of tombstone key must match %s", tenant, TenantPattern)
	case len(tenant) > d.lim.MaxTenantBytes:
		return keyErr(ClassSchema, "tenant of tombstone key too long (%d bytes, max %d)", len(tenant), d.lim.MaxTenantBytes)
	case len(id) == 0:
		return keyErr(ClassSchema, "tombstone key %q has an empty id", key)
	case len(id) > d.lim.MaxIDBytes:
		return keyErr(ClassSchema, "id of tombstone key too long (%d bytes, max %d)", len(id), d.lim.MaxIDBytes)
	}
	ev.Op = OpDelete
	ev.Tombstone = true
	ev.Tenant = string(tenant)
	ev.ID = string(id)
	return nil
}

// keyMatches reports whether key is tenant + "/" + id, without building it.
func keyMatches(key []byte, tenant, id string) bool {
	return len(key) == len(tenant)+1+len(id) &&
		string(key[:len(tenant)]) == tenant && key[len(tenant)] == '/' && string(key[len(tenant)+1:]) == id
}

package segment

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Several Segment sources from one pipeline: each call goes under the write
// key of its route (in the shipped configs, its Braze app group), else under
// the default write key. Each distinct key has its own dispatcher, so its
// requests carry only its calls.

// parseWriteKeys reads write_keys, "route=key,route=key". Its errors name an
// entry by position and route, never by its key.
func parseWriteKeys(list string) (map[string]string, error) {
	keys := map[string]string{}
	for i, entry := range strings.Split(list, ",") {
		if strings.TrimSpace(entry) == "" {
			continue // a trailing comma, or the empty list of an unset variable
		}
		route, key, ok := strings.Cut(entry, "=")
		route, key = strings.TrimSpace(route), strings.TrimSpace(key)
		switch {
		case !ok || route == "" || key == "":
			return nil, fmt.Errorf("%s: entry %d is not route=write_key (say, an app group id, =, its Segment source's write key)", fieldWriteKeys, i+1)
		case keys[route] != "":
			return nil, fmt.Errorf("%s: route %q has two write keys", fieldWriteKeys, route)
		}
		if err := checkWriteKey(fmt.Sprintf("%s: the key of route %q", fieldWriteKeys, route), key); err != nil {
			return nil, err
		}
		keys[route] = key
	}
	return keys, nil
}

// checkWriteKey refuses a key holding a quote, a space or a colon. None is in
// a Segment write key, and Segment answers 200 to a key it does not know and
// drops its calls: a key quoted in a docker --env-file or a Kubernetes
// manifest (both keep quotes literally) would send everything nowhere while
// the pipeline looked healthy. A colon cannot be in Basic auth's user part.
// Its error names what, never the key.
func checkWriteKey(what, key string) error {
	for i, r := range key {
		if strings.ContainsRune("\"'`:", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%s holds %q at byte %d: Segment write keys have no quotes, spaces or colons, and Segment answers 200 to a key it does not know and drops its calls (docker --env-file and Kubernetes keep quotes literally: set the key without them)",
				what, r, i+1)
		}
	}
	return nil
}

// router picks the dispatcher, and so the write key, of each call.
type router struct {
	route     *service.InterpolatedString // nil: every call goes under the default key
	byRoute   map[string]*dispatcher
	byDefault *dispatcher   // nil when there is no default key
	all       []*dispatcher // one per distinct key
}

// newRouter makes one dispatcher per distinct write key: the default one
// (may be empty in dry run) and those of routes (nil route: none).
func newRouter(s *sender, maxRequests int, defaultKey string, routes map[string]string, route *service.InterpolatedString) *router {
	r := &router{byRoute: map[string]*dispatcher{}}
	byKey := map[string]*dispatcher{}
	named := map[*dispatcher][]string{}
	add := func(key string) *dispatcher {
		if d, ok := byKey[key]; ok {
			return d
		}
		d := newDispatcher(s, "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":")), maxRequests)
		byKey[key] = d
		r.all = append(r.all, d)
		return d
	}
	if defaultKey != "" || len(routes) == 0 {
		r.byDefault = add(defaultKey)
	}
	for _, name := range slices.Sorted(maps.Keys(routes)) {
		d := add(routes[name])
		r.byRoute[name] = d
		named[d] = append(named[d], name)
	}
	if len(routes) > 0 {
		r.route = route
	}
	// Named for messages by what they serve, never by the key.
	for _, d := range r.all {
		switch names := named[d]; {
		case len(names) == 0:
			d.label = "the write key"
			if len(routes) > 0 {
				d.label = "the default write key"
			}
		case d == r.byDefault:
			d.label = "the default write key (and route " + strings.Join(names, ", ") + ")"
		default:
			d.label = "the write key of route " + strings.Join(names, ", ")
		}
	}
	return r
}

// pick says under which dispatcher a call goes, or why it cannot go.
func (r *router) pick(msg *service.Message) (*dispatcher, error) {
	if r.route == nil {
		return r.byDefault, nil
	}
	route, err := r.route.TryString(msg)
	if err != nil {
		return nil, &CallError{Cause: CauseNoWriteKey, Permanent: true, Detail: fmt.Sprintf("the call's %s cannot be read: %v", fieldRoute, err)}
	}
	if d, ok := r.byRoute[route]; ok {
		return d, nil
	}
	if r.byDefault != nil {
		return r.byDefault, nil
	}
	return nil, &CallError{Cause: CauseNoWriteKey, Permanent: true, Detail: fmt.Sprintf(
		"no Segment write key for route %q: %s has none for it and there is no default %s", route, fieldWriteKeys, fieldWriteKey)}
}

// downErr is why the output is down: the first source Segment is not
// taking calls for, or nil.
func (r *router) downErr() error {
	for _, d := range r.all {
		if err := d.downErr(); err != nil {
			return err
		}
	}
	return nil
}

package segment

import (
	"strconv"

	segjson "github.com/segmentio/encoding/json"
)

// appendJSON appends v's JSON to b, exactly as segjson.Append would. It
// walks the types a mapping leaves (objects, arrays, strings, integers,
// booleans, null) with a type switch, which costs less than segjson's codec
// lookup for each value of a map of any, and leaves every other type, and
// sorted keys, to segjson itself.
func appendJSON(b []byte, v any, flags segjson.AppendFlags) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case string:
		return segjson.AppendEscape(b, x, flags), nil
	case map[string]any:
		if x == nil || flags&segjson.SortMapKeys != 0 {
			break
		}
		b = append(b, '{')
		first := true
		for k, e := range x {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = segjson.AppendEscape(b, k, flags)
			b = append(b, ':')
			if b, err = appendJSON(b, e, flags); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if x == nil {
			break
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e, flags); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case nil:
		return append(b, "null"...), nil
	}
	return segjson.Append(b, v, flags)
}

package bloblang_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestPropertiesKeepTheirNumbers: the properties of a custom event or a
// purchase reach Segment with their numbers as written, from a storage file
// (a JSON string the mapping parses) as from the Custom HTTP input (an
// object its decoder read: integers past int64 as json.Number). Parsed as
// float64, integers past 2^53 were rounded, so the same event gave two
// calls depending on where it came from.
func TestPropertiesKeepTheirNumbers(t *testing.T) {
	t.Chdir("..") // the config's imports resolve from the repository root
	for _, k := range []string{"BRAZE_EXCLUDE_EVENT_TYPES", "BRAZE_INCLUDE_ANONYMOUS", "BRAZE_OTHER_EVENT_TYPES", "BRAZE_ALL_FIELDS"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	t.Setenv("BRAZE_EVENT_TYPES", "users.behaviors.CustomEvent,users.behaviors.Purchase")
	exec, err := bloblang.Parse(shippedMapping(t, "config/currents_to_segment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const props = `{"order_ref":9007199254740993,"sku_number":1234567890123456789,"unsigned":18446744073709551615,"amount":19.99,"n":-2}`
	want := []string{`"order_ref":9007199254740993`, `"sku_number":1234567890123456789`,
		`"unsigned":18446744073709551615`, `"amount":19.99`, `"n":-2`}
	event := func(eventType, field string, value any) *service.Message {
		m := service.NewMessage(nil)
		m.SetStructured(map[string]any{"id": "e1", "time": int64(1793527267), "user_id": "5f0c0c0c0c0c0c0c0c0c0c0c",
			"external_user_id": "u1", "name": "Order Placed", "product_id": "sku", "price": 19.99, "currency": "USD", field: value})
		m.MetaSetMut("braze_event_type", eventType)
		return m
	}
	var object map[string]any // as the Custom HTTP input's decoder gives it
	if err := json.Unmarshal([]byte(props), &object); err != nil {
		t.Fatal(err)
	}
	object["order_ref"], object["sku_number"] = int64(9007199254740993), int64(1234567890123456789)
	object["unsigned"], object["n"] = json.Number("18446744073709551615"), int64(-2)
	for _, c := range []struct {
		name string
		msg  *service.Message
	}{
		{"custom event, storage", event("users.behaviors.CustomEvent", "properties", props)},
		{"custom event, Custom HTTP", event("users.behaviors.CustomEvent", "custom_properties", object)},
		{"purchase, storage", event("users.behaviors.Purchase", "properties", props)},
		{"purchase, Custom HTTP", event("users.behaviors.Purchase", "purchase_properties", object)},
	} {
		out, err := c.msg.BloblangQuery(exec)
		if err != nil || out == nil {
			t.Fatalf("%s: %v (deleted: %v)", c.name, err, out == nil)
		}
		call, err := out.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(call), w) {
				t.Errorf("%s: no %s in %s", c.name, w, call)
			}
		}
	}
}

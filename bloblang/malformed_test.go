package bloblang_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// httpConfigMappings are the mapping of config/currents_http_to_segment.yaml's pipeline and the one of
// its dead letter output.
func httpConfigMappings(t *testing.T) (pipeline, deadLetter string) {
	t.Helper()
	const config = "config/currents_http_to_segment.yaml"
	c := readShippedConfig(t, config)
	for _, o := range c.Output.Fallback {
		for _, p := range o.Processors {
			if p.Mapping != "" {
				deadLetter = p.Mapping
			}
		}
	}
	if deadLetter == "" {
		t.Fatal("the Custom HTTP config has no mapping in its dead letter output")
	}
	return c.firstMapping(t, config), deadLetter
}

// TestMalformedEventReachesTheDeadLetterUnchanged: a message the braze_currents_http input flagged as a
// malformed event (its content the event as received) goes through the Custom HTTP config's mapping
// unchanged, its error kept, and the dead letter line names the input's reason, the request and the
// event. Mapped, each of these was dropped (deleted(), acknowledged, so lost): the raw event is not
// flattened, so the mapping found no user in it, or no known event type.
func TestMalformedEventReachesTheDeadLetterUnchanged(t *testing.T) {
	t.Chdir("..") // the config's imports resolve from the repository root
	for _, k := range []string{"BRAZE_EVENT_TYPES", "BRAZE_EXCLUDE_EVENT_TYPES", "BRAZE_INCLUDE_ANONYMOUS", "BRAZE_OTHER_EVENT_TYPES", "BRAZE_ALL_FIELDS"} {
		t.Setenv(k, "") // the defaults, whatever the caller's environment holds; restored when the test ends
		_ = os.Unsetenv(k)
	}
	pipeline, deadLetter := httpConfigMappings(t)
	env := service.NewEnvironment()
	env.UseBloblangEnvironment(bloblang.GlobalEnvironment())
	b := env.NewStreamBuilder()
	produce, err := b.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	var out service.MessageBatch
	for _, err := range []error{
		b.AddProcessorYAML("mapping: " + jsonText(t, pipeline)),
		b.AddProcessorYAML("mapping: " + jsonText(t, deadLetter)),
		b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
			out = append(out, batch...)
			return nil
		}),
		b.SetLoggerYAML("level: none"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		_ = s.Stop(ctx)
		<-done
	}()

	const source = "http request 7 from 192.0.2.1:5000"
	cases := []struct{ raw, reason, eventType string }{
		// Anonymous: the mapping deletes such an event.
		{`{"event_type": "users.messages.email.Open", "id": "a1", "time": 1764590400, "properties": "oops", "user": {"user_id": "b"}}`,
			`event 0 (id "a1"): properties is a JSON string, not an object`, "users.messages.email.Open"},
		// Mappable but for the key named twice: mapped, it became a call.
		{`{"event_type": "users.messages.email.Open", "id": "a2", "time": 1764590400, "user": {"external_user_id": "u"}, "user": {"external_user_id": "v"}}`,
			`event 1 (id "a2"): the key "user" appears twice`, "users.messages.email.Open"},
		{`"users.messages.email.Open"`, "event 2: a JSON string, not an object", ""},
		{`{"id": "a4"}`, `event 3 (id "a4"): no event_type`, ""},
	}
	batch := service.MessageBatch{}
	for i, c := range cases {
		m := service.NewMessage([]byte(c.raw))
		m.SetError(errors.New(c.reason))
		if c.eventType != "" {
			m.MetaSetMut("braze_event_type", c.eventType)
		}
		m.MetaSetMut("braze_source", source)
		m.MetaSetMut("braze_record_index", int64(i))
		batch = append(batch, m)
	}
	if err := produce(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(cases) {
		t.Fatalf("%d dead letter lines for %d malformed events", len(out), len(cases))
	}
	for i, c := range cases {
		if err := out[i].GetError(); err == nil || err.Error() != c.reason {
			t.Errorf("event %d: error %v after the pipeline, want the input's %q", i, err, c.reason)
		}
		line, err := out[i].AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		var got, event any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("event %d: the dead letter line %s is not JSON: %v", i, line, err)
		}
		_ = json.Unmarshal([]byte(c.raw), &event)
		var eventType any
		if c.eventType != "" {
			eventType = c.eventType
		}
		want := map[string]any{"error": c.reason, "event_type": eventType, "source": source, "message": event}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: dead letter line\n%s\nwant\n%s", i, line, jsonText(t, want))
		}
	}
}

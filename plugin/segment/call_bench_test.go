package segment

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	segjson "github.com/segmentio/encoding/json"
)

// BenchmarkMessageCallStructured measures what the output does per call of a
// mapping's output before sending: read, check and encode it.
func BenchmarkMessageCallStructured(b *testing.B) {
	v := map[string]any{"type": "track", "event": "Email Sent", "messageId": "f4e5ea83-3a55-48f1-aed8-ababf2e092c4",
		"userId": "user-003731", "anonymousId": "d6be49b57116c23704683850", "timestamp": "2026-11-01T10:07:21Z",
		"properties": map[string]any{"app_group_id": "25710a9562f3d3124a5d0705", "campaign_id": "b2bedfc047a359b78f0c3071",
			"dispatch_id": "249759ea-e640-44ef-9de4-369bbcafbd46", "email_address": "someone@example.com", "send_id": "x", "n": int64(3)},
		"context": map[string]any{"traits": map[string]any{"email": "someone@example.com"}}}
	b.ReportAllocs()
	arena := make([]byte, 0, 1<<20)
	for b.Loop() {
		msg := service.NewMessage(nil)
		msg.SetStructuredMut(v)
		var err error
		if _, arena, err = messageCall(msg, arena, segjson.EscapeHTML); err != nil {
			b.Fatal(err)
		}
		if len(arena) > 1<<19 {
			arena = arena[:0] // as the output recycles its batches' buffers
		}
	}
}

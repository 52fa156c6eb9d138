package segment

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// sizedCall is a track call whose JSON is exactly size bytes.
func sizedCall(id string, size int) *service.Message {
	const format = `{"type":"track","event":"E","userId":"u","messageId":%q,"properties":{"p":"%s"}}`
	pad := size - len(fmt.Sprintf(format, id, ""))
	return service.NewMessage(fmt.Appendf(nil, format, id, strings.Repeat("x", pad)))
}

// A call of exactly 32 KB goes, one byte more fails as too_large unsent,
// alone; calls filling a request to the byte the output packs to make one
// request that the stand-in, reading Segment's 500 KB as 500,000 bytes,
// takes whole.
func TestCallAndRequestSizeBoundaries(t *testing.T) {
	api := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_requests_in_flight: 1}`, testKey, api.URL()))
	batch := service.MessageBatch{sizedCall("at-limit", maxCallBytes), sizedCall("over-limit", maxCallBytes+1)}
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	if errs[0] != nil || api.Count("at-limit") != 1 {
		t.Fatalf("a call of exactly %d bytes: %v, accepted %d times", maxCallBytes, errs[0], api.Count("at-limit"))
	}
	if ce, ok := errs[1].(*CallError); !ok || ce.Cause != CauseTooLarge || api.Count("over-limit") != 0 {
		t.Fatalf("a call of %d bytes: %v, accepted %d times; want too_large, never sent", maxCallBytes+1, errs[1], api.Count("over-limit"))
	}

	// 16 calls of size bytes and their separators fill maxRequestBytes
	// exactly; a 17th goes in a request of its own.
	const calls = 16
	size := maxRequestBytes/calls - 1
	if calls*(size+1) != maxRequestBytes {
		t.Fatalf("maxRequestBytes %d is no multiple of %d: pick another count", maxRequestBytes, calls)
	}
	api.Reset()
	batch = nil
	for i := range calls + 1 {
		batch = append(batch, sizedCall(fmt.Sprintf("fill-%02d", i), size))
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("a full request: %v", err)
	}
	st := api.Stats()
	if st.Requests != 2 || st.MaxCallsInRequest != calls || st.Rejected400 != 0 || api.UniqueMessageIDs() != calls+1 {
		t.Fatalf("%d requests, at most %d calls each, %d refused, %d calls accepted; want 2, %d, none, %d",
			st.Requests, st.MaxCallsInRequest, st.Rejected400, api.UniqueMessageIDs(), calls, calls+1)
	}
	t.Logf("the full request is %d bytes", st.MaxRequestBytes)
}

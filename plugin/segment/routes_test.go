package segment

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Three sources' keys, as SEGMENT_WRITE_KEYS names them by app group.
const (
	keyA       = "wk-route-a-never-print-1"
	keyB       = "wk-route-b-never-print-2"
	keyDefault = "wk-default-never-print-3"
)

// routedBatch is a batch of track calls of the given app groups in turn ("":
// none), message ids prefix-<i>.
func routedBatch(prefix string, groups ...string) service.MessageBatch {
	batch := make(service.MessageBatch, len(groups))
	for i, g := range groups {
		props := "{}"
		if g != "" {
			props = fmt.Sprintf(`{"app_group_id":%q}`, g)
		}
		batch[i] = service.NewMessage(fmt.Appendf(nil, `{"type":"track","event":"E","userId":"u","messageId":"%s-%d","properties":%s}`, prefix, i, props))
	}
	return batch
}

func idsUnder(api *segmentapi.Server, key string) []string {
	var ids []string
	for _, c := range api.AcceptedUnder(key) {
		ids = append(ids, fmt.Sprint(c["messageId"]))
	}
	return ids
}

// Each call goes under its app group's key, calls of app groups without one
// under the default key; each request carries one key's calls only, so the
// stand-in (a source per key) records every call under its own key alone.
func TestCallsGoUnderTheirRoutesKey(t *testing.T) {
	api := segmentapi.StartT(t, keyDefault, segmentapi.WithWriteKeys(keyA, keyB))
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, write_keys: "ag-a=%s, ag-b=%s,", endpoint: %s}`, keyDefault, keyA, keyB, api.URL()))
	batch := routedBatch("r", "ag-a", "ag-b", "ag-c", "", "ag-a", "ag-b")
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("write: %v", err)
	}
	for key, want := range map[string]string{keyA: "r-0 r-4", keyB: "r-1 r-5", keyDefault: "r-2 r-3"} {
		if got := strings.Join(idsUnder(api, key), " "); got != want {
			t.Errorf("calls under key %s…: %q, want %q", key[:10], got, want)
		}
	}
	if st := api.Stats(); st.Accepted != len(batch) || st.UnknownKeyCalls != 0 || st.Requests != 3 {
		t.Errorf("stand-in stats %+v, want %d calls in 3 requests, one per key", st, len(batch))
	}
}

// Without a default key, a call whose route has no key fails for good,
// naming its route, for the dead letter output; its neighbours are sent.
func TestCallWithoutAKeyFailsNamingItsRoute(t *testing.T) {
	api := segmentapi.StartT(t, keyA, segmentapi.WithWriteKeys(keyB))
	out := newTestOutput(t, fmt.Sprintf(`{write_keys: "ag-a=%s,ag-b=%s", endpoint: %s}`, keyA, keyB, api.URL()))
	batch := routedBatch("n", "ag-a", "ag-x", "ag-b")
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("calls with a key failed: %v", errs)
	}
	var ce *CallError
	if !errors.As(errs[1], &ce) || ce.Cause != CauseNoWriteKey || !ce.Permanent || !strings.Contains(ce.Error(), `route "ag-x"`) {
		t.Fatalf("call without a key: %v, want a permanent %s failure naming route ag-x", errs[1], CauseNoWriteKey)
	}
	if got := api.Stats().Accepted; got != 2 {
		t.Fatalf("%d calls accepted, want 2", got)
	}
}

// A refused key holds every call (the batch goes back as not connected) and
// the error names what the key serves, never the key.
func TestRefusedRouteKeyHoldsTheCalls(t *testing.T) {
	api := segmentapi.StartT(t, keyA, segmentapi.WithWriteKeys(keyB))
	api.FailNext(1, http.StatusUnauthorized)
	out := newTestOutput(t, fmt.Sprintf(`{write_keys: "ag-a=%s", endpoint: %s}`, keyA, api.URL()))
	batch := routedBatch("h", "ag-a", "ag-a")
	if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write with a refused key: %v, want not connected", err)
	}
	down := out.s.routes.downErr()
	if down == nil || !strings.Contains(down.Error(), "refused the write key of route ag-a") {
		t.Fatalf("down error %v, want it to name route ag-a", down)
	}
	if strings.Contains(down.Error(), keyA) || strings.Contains(down.Error(), base64.StdEncoding.EncodeToString([]byte(keyA+":"))) {
		t.Fatalf("the error prints the key: %v", down)
	}
	if err := out.Connect(context.Background()); err != nil { // probes until the key works
		t.Fatal(err)
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("write once the key works: %v", err)
	}
	if got := idsUnder(api, keyA); len(got) != 2 {
		t.Fatalf("calls under the key: %v, want both", got)
	}
}

// Malformed write_keys fail at start, naming the entry, never its key.
func TestWriteKeysErrorsNeverPrintAKey(t *testing.T) {
	for list, want := range map[string]string{
		"ag-a=" + keyA + "," + keyB:             "entry 2 is not route=write_key",
		"ag-a=" + keyA + ",ag-a=" + keyB:        `route "ag-a" has two write keys`,
		"=" + keyA:                              "entry 1 is not route=write_key",
		"ag-a=" + keyA + ",ag-b=" + keyB + ",=": "entry 3 is not route=write_key",
	} {
		conf, err := outputSpec().ParseYAML(fmt.Sprintf(`{write_keys: %q}`, list), nil)
		if err == nil {
			_, err = outputFromParsed(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("write_keys %q…: %v, want %q", list[:6], err, want)
			continue
		}
		if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), keyB) {
			t.Errorf("the error prints a key: %v", err)
		}
	}
}

// A write key in quotes, as a docker --env-file or a Kubernetes manifest
// passes `'key'` on literally, fails at start without printing the key:
// Segment answers 200 to the quoted key it does not know and drops every
// call, so the pipeline would look healthy and send nothing. So does a key
// with a space or a colon inside (Basic auth's user part has none).
func TestQuotedWriteKeyIsRefusedAtStart(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{fmt.Sprintf(`{write_key: "'%s'"}`, keyDefault), `write_key holds '\''`},
		{fmt.Sprintf(`{write_key: '"%s"'}`, keyDefault), `write_key holds '"'`},
		{fmt.Sprintf(`{write_key: "%s:"}`, keyDefault), `write_key holds ':'`},
		{fmt.Sprintf(`{write_key: "Basic %s"}`, keyDefault), `write_key holds ' '`},
		{fmt.Sprintf(`{write_keys: "ag-a=%s,ag-b='%s'"}`, keyA, keyB), `write_keys: the key of route "ag-b" holds '\''`},
	} {
		conf, err := outputSpec().ParseYAML(c.yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = outputFromParsed(conf, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %s", c.want, err, c.want)
			continue
		}
		for _, k := range []string{keyA, keyB, keyDefault} {
			if strings.Contains(err.Error(), k) {
				t.Errorf("the error prints a key: %v", err)
			}
		}
	}
	// Surrounding whitespace (a secret file's last newline) is still dropped, not refused.
	api := segmentapi.StartT(t, keyDefault)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: " %s\n", endpoint: %s}`, keyDefault, api.URL()))
	if err := out.WriteBatch(context.Background(), routedBatch("w", "")); err != nil || api.Stats().Accepted != 1 || api.Stats().UnknownKeyCalls != 0 {
		t.Fatalf("key in whitespace: %v, stand-in %+v, want the call accepted under the key", err, api.Stats())
	}
}

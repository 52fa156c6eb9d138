package segmentapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"testing"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const (
	benchCalls = 100
	idDigits   = 12 // width of the per-request counter patched into messageIds
)

// benchBody is a /v1/batch body of benchCalls realistic track calls (~700
// bytes each), with the offsets of each messageId's counter digits, so every
// request can carry fresh ids as a real backfill does.
func benchBody() (body []byte, idAt []int) {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i := range benchCalls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","event":"Braze Email Delivered","userId":"user-%06d",`, i)
		b.WriteString(`"messageId":"`)
		idAt = append(idAt, b.Len())
		fmt.Fprintf(&b, `%0*d-%03d","timestamp":"2026-11-01T10:00:00.000Z","properties":{`, idDigits, 0, i)
		for p := range 15 {
			if p > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"prop_%02d":"val %02d of %03d"`, p, p, i)
		}
		b.WriteString(`},"context":{"traits":{"email":"someone.` + strconv.Itoa(i) + `@example.com"},` +
			`"device":{"type":"ios","model":"iPhone15,2"}},"integrations":{"All":true}}`)
	}
	b.WriteString(`],"sentAt":"2026-11-01T10:00:01.000Z"}`)
	return b.Bytes(), idAt
}

// BenchmarkStandInBatch posts /v1/batch requests over loopback HTTP. The
// per-call figures include the client's share of the work, which is the same
// before and after any server change.
func BenchmarkStandInBatch(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []segmentapi.Option
	}{
		{"record=all", nil},
		{"record=ids", []segmentapi.Option{segmentapi.WithRecordIDsOnly()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			s := segmentapi.StartT(b, writeKey, mode.opts...)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			body, idAt := benchBody()
			b.SetBytes(int64(len(body)))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for n := 0; b.Loop(); n++ {
				digits := fmt.Appendf(nil, "%0*d", idDigits, n)
				for _, at := range idAt {
					copy(body[at:], digits)
				}
				a, err := post(c, s.URL()+"/v1/batch", writeKey, body)
				if err != nil || a.status != http.StatusOK {
					b.Fatalf("status %d, err %v", a.status, err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			calls := float64(b.N * benchCalls)
			if got := s.UniqueMessageIDs(); got != b.N*benchCalls {
				b.Fatalf("unique ids = %d, want %d", got, b.N*benchCalls)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/calls, "ns/call")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/calls, "B/call")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/calls, "allocs/call")
		})
	}
}

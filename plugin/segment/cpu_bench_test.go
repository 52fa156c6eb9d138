package segment

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
	"github.com/currents-connect/currents-connect/tests/selfsigned"
	"github.com/currents-connect/currents-connect/tests/serverproc"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// standInProcess is set in the environment of this test binary run again as
// the Segment stand-in, in a process of its own.
const standInProcess = "CURRENTS_CONNECT_SEGMENT_STANDIN"

func TestMain(m *testing.M) {
	if os.Getenv(standInProcess) != "" {
		// Killed when the benchmark ends. The command's flags follow "--".
		flag.Parse()
		args := append([]string{"-write-key", testKey}, flag.Args()...)
		if err := segmentapi.RunCommand(context.Background(), args, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkOutputCPU measures the output's own CPU per call, which the stages
// bench reads as the difference of two whole pipelines (each with its own
// noise): batches of 100 calls as the mapping leaves them (structured, about
// 700 bytes of JSON each), from 8 writers as with the shipped max_in_flight,
// into the stand-in in a process of its own, as Segment runs on another
// machine. This process's CPU time (getrusage) is then the output's alone,
// reported in CPU-s per million calls. Each writer sends its own batch again
// and again with new messageIds (a string each, about 0.1 µs a call), so
// that the live heap stays small, as in a pipeline.
// Run: go test ./plugin/segment -run '^$' -bench OutputCPU -benchtime 2000x
func BenchmarkOutputCPU(b *testing.B) {
	benchOutputCPU(b, startStandInProcess(b))
}

// BenchmarkOutputCPUOverTLS is BenchmarkOutputCPU as production reaches
// Segment: over HTTPS (HTTP/1.1, the output's own client), the stand-in's
// certificate trusted through SSL_CERT_FILE as the system's roots read it. Go reads that file once a process, so every run here serves the one
// certificate made for the process.
func BenchmarkOutputCPUOverTLS(b *testing.B) {
	cert, err := standInCert()
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile, err := cert.WriteFiles(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("SSL_CERT_FILE", certFile)
	benchOutputCPU(b, startStandInProcess(b, "-tls-cert", certFile, "-tls-key", keyFile))
}

var standInCert = sync.OnceValues(selfsigned.New)

// benchOutputCPU is BenchmarkOutputCPU's body against the stand-in at url.
func benchOutputCPU(b *testing.B, url string) {
	out := newTestOutput(b, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_in_flight: 8}`, testKey, url))
	const writers, callsPerBatch = 8, 100
	var next atomic.Int64
	runtime.GC()
	b.ResetTimer()
	before := cpuTime(b)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			batch := make(service.MessageBatch, callsPerBatch)
			calls := make([]map[string]any, callsPerBatch)
			for i := range batch {
				calls[i] = mappedCall(i)
				batch[i] = service.NewMessage(nil)
				batch[i].SetStructuredMut(calls[i])
			}
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				for i, call := range calls {
					call["messageId"] = "cc-" + strconv.Itoa(int(n)*callsPerBatch+i)
				}
				if err := out.WriteBatch(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	used := cpuTime(b) - before
	b.StopTimer()
	var stats segmentapi.ControlStats
	res, err := http.Get(url + "/_control/stats")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&stats); err != nil {
		b.Fatal(err)
	}
	if stats.UniqueMessageIDs != b.N*callsPerBatch {
		b.Fatalf("the stand-in took %d calls, %d sent", stats.UniqueMessageIDs, b.N*callsPerBatch)
	}
	// The output's own client speaks HTTP/1.1, over TLS too.
	if stats.Requests == 0 || stats.HTTP2Requests != 0 {
		b.Fatalf("%d of %d requests over HTTP/2, want none", stats.HTTP2Requests, stats.Requests)
	}
	b.ReportMetric(used.Seconds()*1e6/float64(b.N*callsPerBatch), "CPU-s/Mcalls")
}

// mappedCall is a call as the mapping leaves one: a Currents email event's
// properties and the user's traits, maps of its own.
func mappedCall(i int) map[string]any {
	return map[string]any{"type": "track", "event": "Email Delivered",
		"userId": fmt.Sprintf("user-%06d", i%100000), "anonymousId": "d6be49b57116c23704683850", "timestamp": "2026-11-01T10:07:21.123Z",
		"properties": map[string]any{"app_group_id": "25710a9562f3d3124a5d0705", "campaign_id": "b2bedfc047a359b78f0c3071",
			"campaign_name": "November <newsletter> & offers", "dispatch_id": "249759ea-e640-44ef-9de4-369bbcafbd46",
			"message_variation_id": "6d4f0a6e8e3b4c1e9f2a7b5c", "email_address": "someone@example.com",
			"send_id": "send-4f1c", "sending_ip": "10.0.0.1", "ip_pool": "pool-a", "esp": "sparkpost", "from_domain": "mail.example.com",
			"is_amp": false, "time": int64(1793527641)},
		"context":      map[string]any{"traits": map[string]any{"email": "someone@example.com"}, "library": map[string]any{"name": "currents-connect"}},
		"integrations": map[string]any{"All": true}}
}

// startStandInProcess runs this test binary again as the stand-in, with
// these flags of its command, and returns its URL; it is killed when the
// benchmark ends.
func startStandInProcess(b *testing.B, flags ...string) string {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run", "^$", "--"}, flags...)...)
	cmd.Env = append(os.Environ(), standInProcess+"=1")
	return serverproc.StartServer(b, cmd, standInListening, 30*time.Second)
}

// standInListening is the stand-in command's first line.
var standInListening = regexp.MustCompile(`^listening (https?://\S+)$`)

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

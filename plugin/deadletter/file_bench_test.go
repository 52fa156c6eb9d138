package deadletter

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// BenchmarkFileOutput writes dead letters of 1 KB in batches of 1 and 100,
// synced and not: the cost of a sync per batch, in lines/s, on the disk
// under the test's temporary directory.
func BenchmarkFileOutput(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 1023)
	for _, size := range []int{1, 100} {
		for _, syncs := range []bool{true, false} {
			b.Run(fmt.Sprintf("batch=%d/sync=%v", size, syncs), func(b *testing.B) {
				conf, err := fileSpec().ParseYAML(fmt.Sprintf("path: %s\nsync: %v", filepath.Join(b.TempDir(), "dl.jsonl"), syncs), nil)
				if err != nil {
					b.Fatal(err)
				}
				o, err := fileOutputFromParsed(conf, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				defer o.Close(ctx)
				batch := make(service.MessageBatch, size)
				for i := range batch {
					batch[i] = service.NewMessage(line)
				}
				for b.Loop() {
					if err := o.WriteBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "lines/s")
			})
		}
	}
}

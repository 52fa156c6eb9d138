package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// BenchmarkInput10kObjects lists and decodes a bucket of 10,080 objects
// (96 event types x 105 files x 10 events) on disk and on the S3 stand-in
// over loopback, and reports objects/s, events/s and the listing alone.
// Run: go test ./plugin/brazecurrents -run '^$' -bench Input10k -benchtime 1x
func BenchmarkInput10kObjects(b *testing.B) {
	dir := b.TempDir()
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 105, RecordsPerFile: 10, Seed: 41, DiscardRecords: true})
	if err != nil {
		b.Fatal(err)
	}
	s3 := buckets.StartS3(b)
	buckets.UploadDir(b, s3, dir)
	for k, v := range s3.Env {
		b.Setenv(k, v)
	}
	for name, url := range map[string]string{"file": "file://" + dir, "s3": s3.URL} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				bucket, err := blob.OpenBucket(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				listed := 0
				w := &walker{bucket: bucket, now: time.Now}
				if err := w.walk(context.Background(), "currents/", func(object) error { listed++; return nil }); err != nil {
					b.Fatal(err)
				}
				listing := time.Since(start)
				_ = bucket.Close()
				if listed != len(written) {
					b.Fatalf("listed %d of %d objects", listed, len(written))
				}

				events := 0
				builder := service.NewStreamBuilder()
				_ = builder.SetLoggerYAML("level: warn")
				if err := builder.AddInputYAML("braze_currents:\n  url: \"" + url + "\"\n  max_parallel_objects: 8\n  include_event_types: [\"*\"]\n  progress_interval: 0s"); err != nil {
					b.Fatal(err)
				}
				_ = builder.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
					events += len(batch)
					return nil
				})
				stream, err := builder.Build()
				if err != nil {
					b.Fatal(err)
				}
				start = time.Now()
				if err := stream.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				if events != len(written)*10 {
					b.Fatalf("%d events, want %d", events, len(written)*10)
				}
				b.ReportMetric(listing.Seconds(), "listing-s")
				b.ReportMetric(float64(len(written))/elapsed.Seconds(), "objects/s")
				b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
			}
		})
	}
}

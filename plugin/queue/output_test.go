package queue

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestOutputBatching: a send returns once its batch of the batching policy
// is complete and sent, and every message reaches the topic.
func TestOutputBatching(t *testing.T) { forEachServer(t, testOutputBatching) }

func testOutputBatching(t *testing.T, ps queueServer) {
	const n = 10
	send := runProducer(t, `
url: `+ps.TopicURL("out")+`
batching:
  count: 4
  period: 1h
`)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	results := make(chan error, n+2)
	sendAsync := func(i int) { go func() { results <- send(ctx, service.NewMessage([]byte(body(i)))) }() }
	sent := func(count int) {
		t.Helper()
		for range count {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range n {
		sendAsync(i)
	}
	sent(8)
	// The last two wait for a third batch of 4 (the period is an hour).
	select {
	case err := <-results:
		t.Fatalf("a send returned (%v) before its batch of 4 was complete", err)
	default:
	}
	// Two more complete it: every message reaches the topic, and nothing
	// is left for the stream's stop to wait for.
	sendAsync(n)
	sendAsync(n + 1)
	sent(4)
	if got := receive(t, ps.SubscriptionURL("out-sub"), n+2); len(got) != n+2 {
		t.Fatalf("%d messages", len(got))
	}
}

// runProducer runs a stream into a queue output of config yaml until the
// test ends, and returns the function that sends to it.
func runProducer(t *testing.T, yaml string) service.MessageHandlerFunc {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.AddOutputYAML("queue:\n  " + strings.ReplaceAll(strings.TrimSpace(yaml), "\n", "\n  ")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	send, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	return send
}

// TestOutputPerMessageErrors: one message of a batch that the queue cannot
// take fails alone, named in a BatchError; the others are sent. RabbitMQ:
// it fails with those sent beside it.
func TestOutputPerMessageErrors(t *testing.T) { forEachServer(t, testOutputPerMessageErrors) }

func testOutputPerMessageErrors(t *testing.T, ps queueServer) {
	out, err := buildOutput(`
url: ` + ps.TopicURL("out") + `
metadata:
  include_prefixes: [ attr ]
`)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer out.Close(ctx)
	bad := ps.badMessage()
	batch := service.MessageBatch{service.NewMessage([]byte(body(0))), bad, service.NewMessage([]byte(body(2)))}
	idx := batch.Index() // before the write, as a pipeline indexes its batches
	err = out.WriteBatch(ctx, batch)
	failed := failedMessages(t, err, idx)
	if _, rabbit := ps.(testRabbit); rabbit {
		// The broker closes the channel on the refusal: the messages the
		// driver sent with it on that channel fail too, even those it had
		// confirmed. As a pipeline would, they are sent again: each arrives,
		// possibly twice.
		if !slices.Contains(failed, 1) {
			t.Fatalf("failed messages %v, want 1 among them", failed)
		}
		var again service.MessageBatch
		for _, i := range failed {
			if i != 1 {
				again = append(again, batch[i])
			}
		}
		if len(again) > 0 {
			if err := out.WriteBatch(ctx, again); err != nil {
				t.Fatalf("sending again %d messages that failed beside the refused one: %v", len(again), err)
			}
		}
		t.Logf("failed messages %v; %d deliveries", failed, receiveAll(t, ps.SubscriptionURL("out-sub"), body(0), body(2)))
		return
	}
	if len(failed) != 1 || failed[0] != 1 {
		t.Fatalf("failed messages %v, want [1]", failed)
	}
	// Its error names the topic, as every failed send's does.
	topic, _, _ := strings.Cut(ps.TopicURL("out"), "?")
	if err := messageErrors(t, err, idx)[1]; !strings.Contains(err.Error(), topic) {
		t.Errorf("the refused message's error %q does not name the topic %s", err, topic)
	}
	got := receive(t, ps.SubscriptionURL("out-sub"), 2)
	if got[body(0)] == nil || got[body(2)] == nil {
		t.Fatalf("received %v", got)
	}
}

// TestSQSOutputOneRefusedFailsAlone: of a batch large enough that gocloud
// would group its sends in tens (more than its 100 handlers), a message SQS
// refuses (U+0001 in the body) fails alone, and the others are stored.
// Before, the request's 9 others, stored, were reported failed with it.
func TestSQSOutputOneRefusedFailsAlone(t *testing.T) {
	const n, bad = 1000, 500
	var batch service.MessageBatch
	for i := range n {
		b := body(i)
		if i == bad {
			b += "\x01"
		}
		batch = append(batch, service.NewMessage([]byte(b)))
	}
	idx := batch.Index()
	s, err := writeToSQS(t, batch)
	failed := failedMessages(t, err, idx)
	if len(failed) != 1 || failed[0] != bad {
		t.Errorf("failed messages %v, want [%d] alone", failed, bad)
	}
	if stored := len(s.Messages(t, "out")); stored != n-1 {
		t.Errorf("the queue stored %d messages, want the %d good ones", stored, n-1)
	}
}

// TestSQSOutputValidMessagesDoNotFail: messages of 120 KB, each valid, sent
// 300 at once, are all stored. Before, gocloud grouped them in tens, past
// SQS's 1 MiB a request (BatchRequestTooLong), and every grouped one failed.
func TestSQSOutputValidMessagesDoNotFail(t *testing.T) {
	var batch service.MessageBatch
	for i := range 300 {
		batch = append(batch, service.NewMessage([]byte(body(i)+strings.Repeat("x", 120<<10))))
	}
	if _, err := writeToSQS(t, batch); err != nil {
		failed := 0
		if batchErr, ok := errors.AsType[*service.BatchError](err); ok {
			failed = batchErr.IndexedErrors()
		}
		t.Fatalf("WriteBatch of %d valid messages of 120 KB: %d failed: %v", len(batch), failed, err)
	}
}

// writeToSQS writes batch through an output to the queue out of an SQS
// emulator of its own.
func writeToSQS(t *testing.T, batch service.MessageBatch) (testSQS, error) {
	t.Helper()
	s := startSQS(t)
	return s, newOutput(t, "url: "+s.TopicURL("out")).WriteBatch(context.Background(), batch)
}

// failedMessages is which messages err, a BatchError, says failed, by the
// index idx that the batch was given before its write.
func failedMessages(t *testing.T, err error, idx *service.Indexer) []int {
	t.Helper()
	var failed []int
	for i := range messageErrors(t, err, idx) {
		failed = append(failed, i)
	}
	slices.Sort(failed)
	return failed
}

// messageErrors is the error err, a BatchError, gives each message that
// failed, by the index idx that the batch was given before its write.
func messageErrors(t *testing.T, err error, idx *service.Indexer) map[int]error {
	t.Helper()
	var batchErr *service.BatchError
	if !errors.As(err, &batchErr) {
		t.Fatalf("WriteBatch: %v, want a BatchError", err)
	}
	errs := map[int]error{}
	batchErr.WalkMessagesIndexedBy(idx, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			errs[i] = err
		}
		return true
	})
	return errs
}

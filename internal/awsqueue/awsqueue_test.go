package awsqueue

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/queues"
	"github.com/currents-connect/currents-connect/tests/silentfront"
)

// waitLimit bounds every wait, so that a bug fails a test, not hangs it.
const waitLimit = time.Minute

// TestOverAConnectionGoneSilent: a subscription and a topic whose
// connection to SQS goes silent (a NAT or load balancer that forgot it)
// give the request up after its wait and RequestTimeout and carry on over
// a new connection: the message sent meanwhile is received, and a send
// returns. Without a timeout the receive and the send waited for ever.
func TestOverAConnectionGoneSilent(t *testing.T) {
	defer func(d time.Duration) { RequestTimeout = d }(RequestTimeout)
	RequestTimeout = time.Second
	s := queues.StartSQS(t)
	s.SetEnv(t)
	s.CreateQueue(t, "q", nil)
	front := silentfront.Start(t, strings.TrimPrefix(s.Endpoint, "http://"))
	u, err := url.Parse(s.QueueURLVia("q", "http://"+front.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	subURL := *u
	subURL.RawQuery += "&waittime=1s"
	sub, err := OpenSubscription(ctx, &subURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	topic, err := OpenTopic(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)

	for i, body := range []string{"before", "after"} {
		if i == 1 {
			front.Silence()
		}
		if err := topic.Send(ctx, &pubsub.Message{Body: []byte(body)}); err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive %q: %v", body, err)
		}
		if string(m.Body) != body {
			t.Fatalf("received %q, want %q", m.Body, body)
		}
		m.Ack()
	}
	if front.Silenced() == 0 {
		t.Fatal("no connection went silent: the test proves nothing")
	}
}

// TestSubscriptionQueryErrors: the subscription's own parameters are
// checked as SQS takes them, naming the parameter.
func TestSubscriptionQueryErrors(t *testing.T) {
	for query, want := range map[string]string{
		"waittime=30s":  "query parameter waittime: 30s is not a whole number of seconds from 0s to 20s",
		"waittime=1.5s": "query parameter waittime: 1.5s is not a whole number",
		"waittime=x":    `query parameter waittime: time: invalid duration "x"`,
		"raw=maybe":     "query parameter raw: strconv.ParseBool",
		"nacklazy=2":    "query parameter nacklazy: strconv.ParseBool",
	} {
		u, _ := url.Parse("awssqs://sqs.us-east-1.amazonaws.com/1/q?region=us-east-1&" + query)
		if _, err := OpenSubscription(context.Background(), u, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", query, err, want)
		}
	}
}

// TestReceivedHandlesReported: the receipt handle of every message a
// ReceiveMessage brought is reported as it arrives, before the caller
// receives the message from gocloud's buffer.
func TestReceivedHandlesReported(t *testing.T) {
	s := queues.StartSQS(t)
	s.SetEnv(t)
	u, err := url.Parse(s.CreateQueue(t, "q", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two"} {
		s.Send(t, "q", []byte(body), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var mu sync.Mutex
	reported := map[string]bool{}
	sub, err := OpenSubscription(ctx, u, func(handles []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range handles {
			reported[h] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	for range 2 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sm sqstypes.Message
		if !m.As(&sm) {
			t.Fatal("not an SQS message")
		}
		mu.Lock()
		ok := reported[aws.ToString(sm.ReceiptHandle)]
		mu.Unlock()
		if !ok {
			t.Fatalf("%q received, its handle never reported", m.Body)
		}
		m.Ack()
	}
}

// TestSNSTopic: an awssns topic opened here publishes to SNS, which
// delivers to the queues subscribed (in its envelope, which the awssqs
// subscription opens), metadata as message attributes.
func TestSNSTopic(t *testing.T) {
	s := queues.StartSQS(t)
	s.SetEnv(t)
	s.CreateQueue(t, "subscribed", nil)
	topicURL, err := url.Parse(s.CreateTopic(t, "events", false, "subscribed"))
	if err != nil {
		t.Fatal(err)
	}
	subURL, err := url.Parse(s.QueueURL("subscribed"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	topic, err := OpenTopic(ctx, topicURL)
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	if err := topic.Send(ctx, &pubsub.Message{Body: []byte("published"), Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	sub, err := OpenSubscription(ctx, subURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "published" || m.Metadata["k"] != "v" {
		t.Fatalf("received %q %v", m.Body, m.Metadata)
	}
	m.Ack()
}

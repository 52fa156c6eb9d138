package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// serviceBus is the package's Service Bus fake: gocloud's azuresb opener
// reads SERVICEBUS_CONNECTION_STRING once a process.
var serviceBus = &queues.SharedServiceBus{}

// An input stopped while its object's events wait for Segment (read, not
// acknowledged: Connect's shutdown ran out of time) hands the notification
// back to Service Bus before Close returns: another replica gets it at
// once, not once its lock (a minute here) ended. It is not acknowledged.
func TestNotificationHeldAtStopAbandonedOverServiceBus(t *testing.T) {
	sb := serviceBus.Get(t)
	sb.SetEnv(t)
	topic := sb.Name(t)
	sb.CreateSubscription(t, topic, "s", time.Minute, 0)
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 5, Seed: 5,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	sb.Send(t, topic, []byte(`{"eventType":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/acme-currents/blobs/`+
		written[0].Key+`","data":{}}`))
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: "+sb.SubscriptionURL(topic, "s")+"\nmax_parallel_objects: 1\n", service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _, err := in.ReadBatch(ctx); err != nil || len(b) != 5 {
		t.Fatalf("read %d events (%v), want the object's 5", len(b), err)
	}
	if err := in.Close(ctx); err != nil { // the batch never acknowledged
		t.Fatal(err)
	}
	left := sb.Messages(t, topic, "s")
	if len(left) != 1 || left[0].State != queues.SBAvailable {
		t.Fatalf("once the input stopped the subscription holds %+v, want the notification available to another replica", left)
	}
}

package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"gocloud.dev/pubsub"
)

// tooLargeForServiceBus is an error for m if topic is a Service Bus topic
// that takes no message as large (256 KB on the Standard tier, up to 100 MB
// on Premium, as the link says). The SDK refuses such a message before
// sending it, but gocloud's azuresb driver counts that refusal retryable and
// sends it again for ever, holding the whole batch; failed here, it fails
// alone, named in the batch's error.
func tooLargeForServiceBus(ctx context.Context, topic *pubsub.Topic, m *pubsub.Message) error {
	var sender *azservicebus.Sender
	if !topic.As(&sender) {
		return nil
	}
	// An empty batch is sized by the link's maximum message size.
	batch, err := sender.NewMessageBatch(ctx, nil)
	if err != nil {
		return nil // the send itself tells what is wrong
	}
	props := make(map[string]any, len(m.Metadata))
	for k, v := range m.Metadata {
		props[k] = v
	}
	err = batch.AddMessage(&azservicebus.Message{Body: m.Body, ApplicationProperties: props}, nil)
	if errors.Is(err, azservicebus.ErrMessageTooLarge) {
		return fmt.Errorf("a message of %d bytes is larger than the Service Bus topic takes (256 KB on the Standard tier): %w", len(m.Body), err)
	}
	return nil
}
